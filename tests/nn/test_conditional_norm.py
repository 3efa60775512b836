"""Conditional LayerNorm (spec §5): exact equality with the pretrained model at initialisation for every condition
(LayerNorm and RoFormerV2's scale-free norm), the formula against nn.LayerNorm with per-example γ/β, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kexue.errors import ConfigError
from kexue.models import Transformer, TransformerConfig
from kexue.nn.conditional_norm import ConditionalLayerNorm, conditioned, convert_norms_to_conditional
from kexue.nn.norms import ScaleFreeRMSNorm

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 99, (3, 9), generator=g)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    return ids, mask


def _normalise(model):
    # give the pretrained norms non-trivial γ_0, β_0 (a fresh LayerNorm has 1 and 0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()


@pytest.mark.parametrize("family", ["bert", "roformer_v2"])
@pytest.mark.parametrize("hidden_units", [None, 16])
def test_converted_model_equals_pretrained_bit_for_bit(family, hidden_units):
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(family=family, **TINY)).eval()
    _normalise(model)
    ids, mask = _batch()
    with torch.no_grad():
        reference = model(input_ids=ids, attention_mask=mask).last_hidden_state.clone()
    norms = convert_norms_to_conditional(model, cond_dim=8, hidden_units=hidden_units)
    kind = ScaleFreeRMSNorm if family == "roformer_v2" else nn.LayerNorm
    assert len(norms) == 1 + 2 * TINY["num_hidden_layers"] and all(isinstance(n.norm, kind) for n in norms)
    for seed in range(3):
        cond = torch.randn(3, 8, generator=torch.Generator().manual_seed(seed)) * 5
        with torch.no_grad(), conditioned(model, cond):
            out = model(input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.equal(out, reference)
    model.train()  # the unfused training path too
    with torch.no_grad(), conditioned(model, torch.randn(3, 8)):
        assert torch.equal(model(input_ids=ids, attention_mask=mask).last_hidden_state, reference)


def test_formula_against_layernorm_with_per_example_gain_and_offset():
    torch.manual_seed(0)
    base = nn.LayerNorm(6, eps=1e-12)
    with torch.no_grad():
        base.weight.uniform_(0.5, 1.5)
        base.bias.normal_()
    module = ConditionalLayerNorm(base, cond_dim=4)
    with torch.no_grad():
        module.gamma_dense.weight.normal_()
        module.beta_dense.weight.normal_()
    x, cond = torch.randn(2, 5, 6, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    module = module.double()
    module.cond = cond
    out = module(x)
    for b in range(2):
        ln = nn.LayerNorm(6, eps=1e-12).double()
        with torch.no_grad():
            ln.weight.copy_(base.weight.double() + module.gamma_dense.weight @ cond[b])
            ln.bias.copy_(base.bias.double() + module.beta_dense.weight @ cond[b])
        torch.testing.assert_close(out[b], ln(x[b]), rtol=0, atol=1e-12)  # every position, the same γ(c), β(c)


def test_scale_free_formula():
    module = ConditionalLayerNorm(ScaleFreeRMSNorm(1e-12), cond_dim=3, width=4).double()
    with torch.no_grad():
        module.gamma_dense.weight.normal_()
        module.beta_dense.weight.normal_()
    x, cond = torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    module.cond = cond
    xhat = x / (x.pow(2).mean(-1, keepdim=True) + 1e-12).sqrt()
    gamma = 1 + cond @ module.gamma_dense.weight.T
    beta = cond @ module.beta_dense.weight.T
    torch.testing.assert_close(module(x), gamma[:, None] * xhat + beta[:, None], rtol=0, atol=1e-12)


@pytest.mark.parametrize("family", ["bert", "roformer_v2"])
def test_gradients_reach_w_gamma_w_beta_and_tasks_then_differ(family):
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(family=family, **TINY))
    norms = convert_norms_to_conditional(model, cond_dim=4)
    ids, mask = _batch()
    cond = torch.eye(4)[[0, 1, 2]]
    with conditioned(model, cond):
        out = model(input_ids=ids, attention_mask=mask).last_hidden_state
    (out * torch.randn_like(out)).sum().backward()
    for n in norms:
        assert n.gamma_dense.weight.grad.abs().sum() > 0 and n.beta_dense.weight.grad.abs().sum() > 0
    opt = torch.optim.SGD([p for n in norms for p in (n.gamma_dense.weight, n.beta_dense.weight)], lr=0.1)
    opt.step()
    model.eval()
    same_ids, same_mask = ids[:1].expand(2, -1), mask[:1].expand(2, -1)
    with torch.no_grad(), conditioned(model, torch.eye(4)[[0, 1]]):
        two = model(input_ids=same_ids, attention_mask=same_mask).last_hidden_state
    assert (two[0] - two[1]).abs().max() > 1e-4  # the same text under two task ids now differs


def test_errors():
    model = Transformer(TransformerConfig(family="bert", **TINY))
    ids, mask = _batch()
    with pytest.raises(ConfigError, match="no conditional norm"):
        with conditioned(model, torch.zeros(3, 4)):
            pass
    convert_norms_to_conditional(model, cond_dim=4)
    with pytest.raises(RuntimeError, match="no condition"):
        model(input_ids=ids, attention_mask=mask)
    with pytest.raises(ValueError, match="condition"):
        with conditioned(model, torch.zeros(2, 4)):
            model(input_ids=ids, attention_mask=mask)
    with pytest.raises(ConfigError, match="no LayerNorm"):
        convert_norms_to_conditional(nn.Linear(2, 2), cond_dim=4)
    with pytest.raises(ConfigError, match="width"):
        ConditionalLayerNorm(ScaleFreeRMSNorm(), cond_dim=4)
