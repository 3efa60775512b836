"""DGCNN blocks and the SPACES extractor (spec arch §12 property 4)."""

import pytest
import torch

from kexue.errors import ConfigError
from kexue.nn.dgcnn import DGCNNExtractor, GatedDilatedConv


def test_block_with_alpha_zero_is_identity():
    torch.manual_seed(0)
    block = GatedDilatedConv(8, kernel=3, dilation=2)
    x = torch.randn(2, 7, 8)
    assert torch.equal(block(x), x)
    with torch.no_grad():
        block.alpha.fill_(0.7)
    assert not torch.allclose(block(x), x)


def test_block_formula_against_manual_convolution():
    torch.manual_seed(1)
    block = GatedDilatedConv(4, kernel=3, dilation=2)
    with torch.no_grad():
        block.alpha.fill_(0.5)
    x = torch.randn(1, 9, 4)
    w, b = block.conv.weight, block.conv.bias  # [8, 4, 3]
    padded = torch.cat((torch.zeros(2, 4), x[0], torch.zeros(2, 4)))
    u = torch.stack([sum(padded[t + 2 * k] @ w[:, :, k].T for k in range(3)) + b for t in range(9)])
    gate = u[:, :4] * torch.sigmoid(u[:, 4:])
    expected = x[0] + 0.5 * torch.nn.functional.layer_norm(gate, (4,), block.norm.weight, block.norm.bias)
    torch.testing.assert_close(block(x)[0], expected, atol=1e-5, rtol=1e-5)


def test_padding_does_not_leak_and_receptive_field():
    torch.manual_seed(2)
    model = DGCNNExtractor(input_size=6, hidden=8, dilations=(1, 2), dropout=0.0).eval()
    for block in model.blocks:
        block.alpha.data.fill_(1.0)
    x = torch.randn(1, 12, 6)
    mask = torch.ones(1, 12, dtype=torch.long)
    mask[0, 9:] = 0
    out = model(x, mask)
    assert torch.isinf(out[0, 9:]).all()
    x2 = x.clone()
    x2[0, 9:] = 100.0  # padding content changes nothing
    torch.testing.assert_close(model(x2, mask)[0, :9], out[0, :9])
    torch.testing.assert_close(model(x[:, :9], mask[:, :9])[0], out[0, :9], atol=1e-5, rtol=1e-5)
    # receptive field of dilations (1, 2) with kernel 3: +-3 positions
    x3 = x.clone()
    x3[0, 0] += 5.0
    changed = (model(x3, mask)[0, :9] - out[0, :9]).abs() > 1e-6
    assert changed[:4].all() and not changed[4:].any()


def test_bad_arguments():
    with pytest.raises(ConfigError, match="odd kernel"):
        GatedDilatedConv(4, kernel=2)
    with pytest.raises(ConfigError, match="dropout"):
        DGCNNExtractor(dropout=1.5)
