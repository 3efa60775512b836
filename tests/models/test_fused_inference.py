"""The inference fast path (kexue.nn.fused): oneDNN-fused bf16 projections, exact fp32 in-place path, fallbacks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kexue.models import Transformer
from kexue.models.config import TransformerConfig
from kexue.nn.fused import FUSED_ACTIVATIONS, can_fuse, fused_linear

REFERENCE = {  # independent eager definitions of Hugging Face's hidden_act names
    "gelu": lambda t: 0.5 * t * (1 + torch.erf(t / 2 ** 0.5)),
    "gelu_new": lambda t: 0.5 * t * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (t + 0.044715 * t ** 3))),
    "gelu_pytorch_tanh": lambda t: 0.5 * t * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (t + 0.044715 * t ** 3))),
    "relu": lambda t: t.clamp_min(0),
    "silu": lambda t: t * torch.sigmoid(t),
    "swish": lambda t: t * torch.sigmoid(t),
    "tanh": torch.tanh,
}


def _linear(dtype, bias=True, seed=0):
    torch.manual_seed(seed)
    lin = nn.Linear(48, 40, bias=bias)
    with torch.no_grad():
        if bias:
            lin.bias.normal_()
    return lin.to(dtype)


def _bf16_bound(ref: torch.Tensor) -> torch.Tensor:
    """Rounding a float32 value to bf16 (8 significant bits) moves it by at most 2^-8 of its size; the float32
    accumulation order adds ~1e-6 relative. Allow 2^-8 |ref| + 1e-3."""
    return ref.abs() * 2 ** -8 + 1e-3


@pytest.mark.parametrize("act", [None, *FUSED_ACTIVATIONS])
@pytest.mark.parametrize("bias", [True, False])
def test_bf16_fused_linear_matches_float32_reference(act, bias):
    lin = _linear(torch.bfloat16, bias)
    x = torch.randn(3, 7, 48).to(torch.bfloat16)
    with torch.no_grad():
        assert can_fuse(lin, x)  # the oneDNN kernel is what is tested here
        y = fused_linear(lin, x, activation=act)
        ref = x.float() @ lin.weight.float().T + (lin.bias.float() if bias else 0)
        ref = REFERENCE[act](ref) if act else ref
    assert y.dtype == torch.bfloat16 and y.shape == (3, 7, 40)
    assert bool(((y.float() - ref).abs() <= _bf16_bound(ref)).all())


def test_bf16_fused_residual_matches_float32_reference():
    lin = _linear(torch.bfloat16)
    x = torch.randn(2, 5, 48).to(torch.bfloat16)
    r = torch.randn(2, 5, 40).to(torch.bfloat16)
    with torch.no_grad():
        assert can_fuse(lin, x, r)
        y = fused_linear(lin, x, residual=r)
    ref = x.float() @ lin.weight.float().T + lin.bias.float() + r.float()
    assert bool(((y.float() - ref).abs() <= _bf16_bound(ref)).all())


@pytest.mark.parametrize("act", FUSED_ACTIVATIONS)
def test_fp32_path_is_bit_identical_to_plain_ops(act):
    lin = _linear(torch.float32)
    x = torch.randn(4, 6, 48)
    r = torch.randn(4, 6, 40)
    eager = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu, "swish": F.silu, "tanh": torch.tanh}.get(
        act, lambda t: F.gelu(t, approximate="tanh"))
    with torch.no_grad():
        assert not can_fuse(lin, x)  # fp32 stays on F.linear (MKL), as transformers does
        assert torch.equal(fused_linear(lin, x, activation=act), eager(F.linear(x, lin.weight, lin.bias)))
        assert torch.equal(fused_linear(lin, x, residual=r), r + F.linear(x, lin.weight, lin.bias))
        assert torch.equal(fused_linear(lin, x), F.linear(x, lin.weight, lin.bias))


def test_fallbacks_keep_autograd_hooks_and_wrappers():
    lin = _linear(torch.bfloat16)
    x = torch.randn(2, 3, 48).to(torch.bfloat16)
    # gradients on: ordinary ops, so backward works
    y = fused_linear(lin, x, activation="gelu")
    assert not can_fuse(lin, x) and y.requires_grad
    y.float().sum().backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0

    class Wrapped(nn.Linear):  # stands for a peft LoRA layer or any subclass with its own forward
        def forward(self, t):
            return super().forward(t) + 1

    wrapped = Wrapped(48, 40).to(torch.bfloat16)
    calls = []
    lin.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        assert not can_fuse(wrapped, x) and not can_fuse(lin, x)
        assert torch.equal(fused_linear(wrapped, x), F.linear(x, wrapped.weight, wrapped.bias) + 1)
        fused_linear(lin, x)
        with torch.backends.mkldnn.flags(enabled=False):
            assert not can_fuse(_linear(torch.bfloat16), x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not can_fuse(_linear(torch.bfloat16), x)
    assert calls == [1]


def test_bad_arguments():
    lin = _linear(torch.float32)
    with pytest.raises(ValueError, match="unknown activation"):
        fused_linear(lin, torch.randn(1, 48), activation="mish")
    with pytest.raises(ValueError, match="not both"):
        fused_linear(lin, torch.randn(1, 48), activation="gelu", residual=torch.randn(1, 40))


def _tiny(family):
    torch.manual_seed(0)
    cfg = TransformerConfig(family=family, vocab_size=120, hidden_size=64, num_hidden_layers=3,
                            num_attention_heads=4, intermediate_size=128, max_position_embeddings=64,
                            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return Transformer(cfg).eval()


@pytest.mark.parametrize("family", ["bert", "roformer", "roformer_v2"])
def test_bf16_backbone_fused_equals_unfused_and_tracks_fp32(family):
    """The whole block in bf16: fused kernels vs the same model with the fusion off (both bf16), and vs fp32
    (RoFormer: fp32 rotary tables on bf16 q/k; RoFormerV2: bias-free projections, scale-free norm)."""
    model = _tiny(family)
    ids = torch.randint(1, 120, (3, 17))
    mask = torch.ones(3, 17, dtype=torch.long)
    mask[1, 9:] = 0
    mask[2, 4:] = 0
    with torch.no_grad():
        ref32 = model(ids, mask).last_hidden_state
        model.to(torch.bfloat16)
        fused = model(ids, mask).last_hidden_state.float()
        with torch.backends.mkldnn.flags(enabled=False):
            plain = model(ids, mask).last_hidden_state.float()
    real = mask.bool()
    # LayerNorm outputs are O(1); bf16 keeps ~3 significant digits per op over 3 layers
    cos_fused = F.cosine_similarity(fused[real], ref32[real], dim=-1)
    cos_plain = F.cosine_similarity(fused[real], plain[real], dim=-1)
    assert cos_fused.min() > 0.999 and cos_plain.min() > 0.999
    assert not torch.equal(fused, plain)  # the fused kernels really ran (another rounding order)
