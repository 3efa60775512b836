"""GlobalPointer / Efficient GlobalPointer: spec §2-§3 properties, masks and the span decoder."""

from __future__ import annotations

import math

import pytest
import torch

from kexue.errors import ConfigError
from kexue.losses.multilabel import multilabel_categorical_crossentropy
from kexue.nn.global_pointer import (
    EfficientGlobalPointer,
    GlobalPointer,
    decode_spans,
    span_indices,
    span_labels_dense,
)

POINTERS = [GlobalPointer, EfficientGlobalPointer]


def _rotation(d: int, m: int, base: float = 10000.0) -> torch.Tensor:
    """Explicit block-diagonal RoPE matrix R_m (interleaved pairs), float64."""
    r = torch.zeros(d, d, dtype=torch.float64)
    for i in range(d // 2):
        theta = m * base ** (-2 * i / d)
        c, s = math.cos(theta), math.sin(theta)
        r[2 * i, 2 * i], r[2 * i, 2 * i + 1] = c, -s
        r[2 * i + 1, 2 * i], r[2 * i + 1, 2 * i + 1] = s, c
    return r


@pytest.mark.parametrize("cls", POINTERS)
def test_shape_and_masks(cls: type) -> None:
    head = cls(hidden_size=16, heads=3, head_size=8)
    x = torch.randn(2, 6, 16)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    out = head(x, mask)
    neg = torch.finfo(out.dtype).min
    assert out.shape == (2, 3, 6, 6)
    lower = torch.ones(6, 6, dtype=torch.bool).tril(-1)
    assert (out[:, :, lower] == neg).all()
    assert (out[1, :, 4:, :] == neg).all() and (out[1, :, :, 4:] == neg).all()
    upper_real = ~lower
    upper_real[4:, :] = False
    upper_real[:, 4:] = False
    assert (out[1][:, upper_real] > neg).all() and (out[0][:, ~lower] > neg).all()


@pytest.mark.parametrize("cls", POINTERS)
def test_tril_mask_off_leaves_lower_triangle(cls: type) -> None:
    head = cls(hidden_size=16, heads=2, head_size=8, tril_mask=False)
    out = head(torch.randn(1, 5, 16), torch.ones(1, 5))
    assert (out > torch.finfo(out.dtype).min).all()


@pytest.mark.parametrize("cls", POINTERS)
def test_rope_gives_relative_position_invariance(cls: type) -> None:
    head = cls(hidden_size=16, heads=2, head_size=8, tril_mask=False).double()
    x = torch.randn(1, 1, 16, dtype=torch.float64).expand(1, 7, 16)  # same vector at every position
    out = head(x)[0]
    for offset in range(-6, 7):
        diag = torch.diagonal(out, offset=offset, dim1=-2, dim2=-1)
        assert torch.allclose(diag, diag[..., :1].expand_as(diag), atol=1e-10)
    assert not torch.allclose(torch.diagonal(out, 1, -2, -1)[..., 0], torch.diagonal(out, 3, -2, -1)[..., 0])
    head.rope = False
    flat = head(x)[0]
    assert torch.allclose(flat, flat[..., :1, :1].expand_as(flat), atol=1e-10)


def test_global_pointer_matches_reference_loop() -> None:
    d, heads, hidden, length = 8, 2, 12, 5
    head = GlobalPointer(hidden, heads, d).double()
    x = torch.randn(1, length, hidden, dtype=torch.float64)
    with torch.no_grad():
        out = head(x)[0]
        proj = head.dense(x)[0].view(length, heads, 2 * d)
    for a in range(heads):
        for i in range(length):
            for j in range(i, length):
                q = _rotation(d, i) @ proj[i, a, :d]
                k = _rotation(d, j) @ proj[j, a, d:]
                assert float(out[a, i, j]) == pytest.approx(float(q @ k) / math.sqrt(d), abs=1e-10)


def _bert4keras_efficient_global_pointer(x: torch.Tensor, p_weight: torch.Tensor, p_bias: torch.Tensor,
                                         q_weight: torch.Tensor, q_bias: torch.Tensor, head_size: int,
                                         rope: bool = True) -> torch.Tensor:
    """Independent transcription of bert4keras ``EfficientGlobalPointer.call`` (no masking), float64.

    Keras ``Dense`` computes ``x @ kernel + bias`` with ``kernel [in, out]`` (torch stores ``weight [out, in]``).
    RoPE as bert4keras' ``SinusoidalPositionEmbedding(head_size, 'zero')`` + ``apply_rotary_position_embeddings``:
    ``pos[..., 0::2] = sin``, ``pos[..., 1::2] = cos`` of ``position * 10000^{-2i/d}``; each repeated twice;
    ``x2 = stack([-x[..., 1::2], x[..., ::2]], -1)``; ``x * cos + x2 * sin``.
    """
    inputs = torch.einsum("bnh,hk->bnk", x, p_weight.T) + p_bias
    qw, kw = inputs[..., ::2], inputs[..., 1::2]
    if rope:
        length = x.shape[1]
        position = torch.arange(length, dtype=torch.float64)[:, None]
        theta = torch.pow(10000.0, -2 * torch.arange(head_size // 2, dtype=torch.float64) / head_size)
        angles = position * theta[None, :]
        pos = torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).reshape(length, head_size)[None]
        cos_pos = pos[..., 1::2].repeat_interleave(2, dim=-1)
        sin_pos = pos[..., ::2].repeat_interleave(2, dim=-1)
        qw2 = torch.stack([-qw[..., 1::2], qw[..., ::2]], dim=-1).reshape(qw.shape)
        kw2 = torch.stack([-kw[..., 1::2], kw[..., ::2]], dim=-1).reshape(kw.shape)
        qw, kw = qw * cos_pos + qw2 * sin_pos, kw * cos_pos + kw2 * sin_pos
    logits = torch.einsum("bmd,bnd->bmn", qw, kw) / head_size ** 0.5
    bias = torch.einsum("bnh->bhn", torch.einsum("bnk,kh->bnh", inputs, q_weight.T) + q_bias) / 2
    return logits[:, None] + bias[:, ::2, None] + bias[:, 1::2, :, None]


@pytest.mark.parametrize("rope", [True, False])
def test_efficient_global_pointer_matches_bert4keras_expression(rope: bool) -> None:
    """Spec §3: even type channel = end position j, odd = start i (bert4keras layout), same weights."""
    d, heads, hidden, length = 8, 3, 12, 6
    torch.manual_seed(0)
    head = EfficientGlobalPointer(hidden, heads, d, rope=rope, tril_mask=False).double()
    x = torch.randn(2, length, hidden, dtype=torch.float64)
    with torch.no_grad():
        out = head(x)
        ref = _bert4keras_efficient_global_pointer(
            x, head.dense.weight.clone(), head.dense.bias.clone(), head.type_dense.weight.clone(),
            head.type_dense.bias.clone(), d, rope=rope)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)
    # the asymmetry is real: swapping the two channels of each type changes the output
    with torch.no_grad():
        swapped = head.type_dense.weight.view(heads, 2, -1).flip(1).reshape(2 * heads, -1).clone()
        head.type_dense.weight.copy_(swapped)
        assert (head(x) - ref).abs().max() > 1e-3


def test_efficient_global_pointer_masked_and_param_count() -> None:
    d, heads, hidden, length = 8, 3, 12, 5
    head = EfficientGlobalPointer(hidden, heads, d).double()
    x = torch.randn(1, length, hidden, dtype=torch.float64)
    with torch.no_grad():
        out = head(x)[0]
        ref = _bert4keras_efficient_global_pointer(x, head.dense.weight, head.dense.bias, head.type_dense.weight,
                                                   head.type_dense.bias, d)[0]
    upper = ~torch.ones(length, length, dtype=torch.bool).tril(-1)
    torch.testing.assert_close(out[:, upper], ref[:, upper], atol=1e-10, rtol=0)
    assert (out[:, ~upper] == torch.finfo(out.dtype).min).all()
    big = EfficientGlobalPointer(768, 10, 64)
    assert sum(t.numel() for t in big.parameters()) == 98_432 + 2_580  # spec §3 property 1


def test_efficient_global_pointer_type_term() -> None:
    head = EfficientGlobalPointer(16, 4, 8, tril_mask=False).double()
    x = torch.randn(1, 6, 16, dtype=torch.float64)
    out = head(x)[0]
    inter = out[:, 1, 4] - out[:, 1, 2] - out[:, 3, 4] + out[:, 3, 2]  # separable type term
    assert torch.allclose(inter, inter[:1].expand_as(inter), atol=1e-10)
    torch.nn.init.zeros_(head.type_dense.weight)
    torch.nn.init.zeros_(head.type_dense.bias)
    same = head(x)[0]
    assert torch.allclose(same, same[:1].expand_as(same))


def test_errors() -> None:
    with pytest.raises(ConfigError, match="even"):
        GlobalPointer(8, 2, head_size=7)
    with pytest.raises(ValueError, match="B, heads"):
        span_indices(torch.zeros(2, 3, 3))


def test_planted_nested_spans_decode_exactly() -> None:
    length, heads = 9, 3
    gold = [
        [(0, 2, 3), (0, 2, 5), (1, 2, 5), (2, 4, 5), (1, 6, 6), (0, 1, 7)],  # shared start, shared end, nesting
        [(2, 1, 1), (2, 1, 2)],
        [],
    ]
    labels = span_labels_dense(gold, heads, length)
    logits = labels * 20 - 10
    attention_mask = torch.ones(3, length)
    attention_mask[1, 4:] = 0
    from kexue.nn.global_pointer import mask_span_logits

    masked = mask_span_logits(logits, attention_mask, tril_mask=True)
    assert decode_spans(masked) == [sorted(g) for g in gold]
    assert decode_spans(masked[0]) == sorted(gold[0])
    special = torch.zeros(3, length, dtype=torch.bool)
    special[:, 7] = True  # a span ending on a special token is dropped
    assert decode_spans(masked, special_tokens_mask=special)[0] == sorted(s for s in gold[0] if s[2] != 7)


def test_loss_finite_without_entities() -> None:
    head = GlobalPointer(16, 2, 8)
    x = torch.randn(2, 5, 16, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    logits = head(x, mask)
    labels = torch.zeros_like(logits)
    labels[0, 0, 1, 2] = 1
    loss = multilabel_categorical_crossentropy(labels.flatten(2), logits.flatten(2)).mean()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())
