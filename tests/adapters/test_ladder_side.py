"""Ladder Side-Tuning (spec training.md §7)."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel

from kexue.adapters import LadderSideNetwork, side_parameter_count, uniform_taps
from kexue.errors import ConfigError


def _backbone(layers=4, hidden=16):
    config = BertConfig(vocab_size=40, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=32)
    return BertModel(config)


_IDS = torch.tensor([[2, 5, 7, 9, 3], [2, 11, 4, 3, 0]])
_MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])


def test_tap_mapping():
    assert uniform_taps(12, 4) == [2, 5, 8, 11]
    assert uniform_taps(24, 4) == [5, 11, 17, 23]
    with pytest.raises(ConfigError):
        uniform_taps(2, 4)


@pytest.mark.parametrize("fusion", ["add", "gate"])
def test_no_gradient_reaches_the_backbone_and_every_side_part_learns(fusion):
    backbone = _backbone()
    lst = LadderSideNetwork(backbone, side_hidden=8, side_layers=2, side_heads=2, side_ffn=16, fusion=fusion,
                            dropout=0.0)
    lst.train()
    assert not backbone.training  # backbone kept in eval mode
    out = lst(input_ids=_IDS, attention_mask=_MASK)
    assert out.shape == (2, 5, 8)
    with torch.no_grad():
        states = backbone(input_ids=_IDS, attention_mask=_MASK, output_hidden_states=True).hidden_states
    assert not any(s.requires_grad for s in states)
    (out[:, 0] ** 2).sum().backward()
    for p in backbone.parameters():
        assert p.grad is None and not p.requires_grad
    for name, p in lst.named_parameters():
        if not name.startswith("backbone."):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    trainable = sum(p.numel() for p in lst.side_parameters())
    assert trainable == side_parameter_count(16, 8, 2, 16, fusion=fusion)
    assert trainable == sum(p.numel() for p in lst.parameters() if p.requires_grad)


def test_su_config_parameter_count_is_about_one_million():
    # 5 ladders 768→128 (491 520) + 4 blocks of 198 272
    assert side_parameter_count(768, 128, 4, 512) == 5 * 768 * 128 + 4 * 198_272


def test_side_output_depends_on_tapped_states_only_through_ladders():
    """Explicit taps: changing a backbone block that is not tapped (nor upstream of a tap) leaves the output."""
    backbone = _backbone(layers=4)
    lst = LadderSideNetwork(backbone, side_hidden=8, side_layers=2, side_heads=2, side_ffn=16, taps=[0, 1],
                            dropout=0.0).eval()
    before = lst(input_ids=_IDS, attention_mask=_MASK)
    with torch.no_grad():
        for p in backbone.encoder.layer[3].parameters():
            p.add_(1.0)
    assert torch.equal(lst(input_ids=_IDS, attention_mask=_MASK), before)
    with torch.no_grad():
        for p in backbone.encoder.layer[1].parameters():
            p.add_(1.0)
    assert not torch.allclose(lst(input_ids=_IDS, attention_mask=_MASK), before)


def test_bad_options():
    with pytest.raises(ConfigError):
        LadderSideNetwork(_backbone(), side_hidden=8, side_layers=2, side_heads=3)
    with pytest.raises(ConfigError):
        LadderSideNetwork(_backbone(), side_hidden=8, side_layers=2, side_heads=2, taps=[0, 9])
    with pytest.raises(ConfigError):
        LadderSideNetwork(torch.nn.Linear(2, 2), side_hidden=8, side_layers=2, side_heads=2)
