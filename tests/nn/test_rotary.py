"""RoPE (https://kexue.fm/archives/8265): spec §6 values, pairing convention and the relative-position property."""

from __future__ import annotations

import math

import torch

from kexue.nn.rotary import RotaryEmbedding, apply_rotary, rotary_tables


def _at(x: torch.Tensor, m: int, rope: RotaryEmbedding) -> torch.Tensor:
    """Rotate a single vector ``x`` [d] as if it sat at position ``m``."""
    return rope(x[None, :], positions=torch.tensor([m]))[0]


def test_spec_values_interleaved_pairs():
    rope = RotaryEmbedding(4)
    e0 = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    e2 = torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    assert torch.allclose(_at(e0, 1, rope), torch.tensor([0.540302, 0.841471, 0, 0], dtype=torch.float64), atol=1e-6)
    assert torch.allclose(_at(e2, 1, rope), torch.tensor([0, 0, math.cos(0.01), math.sin(0.01)],
                                                         dtype=torch.float64), atol=1e-9)
    half = RotaryEmbedding(4, interleaved=False)
    assert torch.allclose(_at(e0, 1, half), torch.tensor([0.540302, 0, 0.841471, 0], dtype=torch.float64), atol=1e-6)


def test_relative_position_property():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(8, generator=g, dtype=torch.float64), torch.randn(8, generator=g, dtype=torch.float64)
    rope = RotaryEmbedding(8)
    a = _at(q, 3, rope) @ _at(k, 7, rope)
    b = _at(q, 13, rope) @ _at(k, 17, rope)
    c = _at(q, 3, rope) @ _at(k, 8, rope)
    assert abs(a - b) < 1e-9
    assert abs(a - c) > 1e-3  # it does depend on the offset


def test_norm_identity_and_block_diagonal_matrix():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, generator=g, dtype=torch.float64)
    rope = RotaryEmbedding(6, base=10000.0)
    assert torch.allclose(_at(x, 0, rope), x)
    m = 5
    y = _at(x, m, rope)
    assert abs(y.norm() - x.norm()) < 1e-12
    r = torch.zeros(6, 6, dtype=torch.float64)
    for i in range(3):
        t = m * 10000 ** (-2 * i / 6)
        r[2 * i:2 * i + 2, 2 * i:2 * i + 2] = torch.tensor([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    assert torch.allclose(y, r @ x, atol=1e-12)


def test_batched_heads_match_per_position():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 5, 8, generator=g)  # [B, h, L, d]
    cos, sin = rotary_tables(5, 8)
    y = apply_rotary(x, cos, sin)
    rope = RotaryEmbedding(8)
    for m in range(5):
        assert torch.allclose(y[1, 2, m], _at(x[1, 2, m], m, rope), atol=1e-6)
