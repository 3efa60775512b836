"""Rotary position embedding (RoPE) with RoFormer's interleaved pairing.

Source: Su Jianlin, "Transformer升级之路:2、博采众长的旋转式位置编码", https://kexue.fm/archives/8265
(paper: RoFormer, arXiv 2104.09864). Pairs are adjacent channels ``(x_0, x_1), (x_2, x_3), ...``;
``θ_i = base^{-2i/d}``; positions are 0-based.
"""

from __future__ import annotations

import torch
from torch import nn

from kexue.errors import ConfigError


def rotary_tables(
    seq_len: int, dim: int, base: float = 10000.0, *, positions: torch.Tensor | None = None,
    device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``cos`` and ``sin`` tables of RoPE, each ``[L, dim // 2]``.

    Angles ``m·θ_i`` are computed in float64 (accurate at long lengths) and cast to ``dtype``.

    Args:
        seq_len: number of positions ``L`` (positions ``0..L-1`` unless ``positions`` is given).
        dim: head size ``d`` (even).
        base: ``base`` of ``θ_i = base^{-2i/d}`` (``rope_theta``), 10000 in RoFormer.
        positions: optional ``[L]`` integer positions.
    Raises:
        ConfigError: odd ``dim``.
    """
    if dim % 2:
        raise ConfigError(f"rotary dim must be even, got {dim}")
    if positions is None:
        positions = torch.arange(seq_len, device=device)
    inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float64, device=positions.device) / dim)
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, interleaved: bool = True) -> torch.Tensor:
    """Rotate feature pairs of ``x`` by the angles in ``cos``/``sin``.

    ``f(x, m)_{2i} = x_{2i} cos(mθ_i) − x_{2i+1} sin(mθ_i)``, ``f(x, m)_{2i+1} = x_{2i+1} cos(mθ_i) + x_{2i} sin(mθ_i)``
    (interleaved, RoFormer/GlobalPointer); ``interleaved=False`` pairs channel ``i`` with ``i + d/2``
    (GPT-NeoX layout, not checkpoint-compatible with RoFormer).

    Args:
        x: ``[..., L, d]`` float.
        cos, sin: ``[L, d/2]`` (broadcast over leading dims of ``x``).
    Returns:
        Tensor of ``x``'s shape and dtype.
    """
    cos = cos.to(x.dtype)
    sin = sin.to(x.dtype)
    if interleaved:
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).flatten(-2)
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class RotaryEmbedding(nn.Module):
    """RoPE as a module (no parameters): ``forward(x, positions)`` rotates ``x`` ``[..., L, dim]``.

    Args:
        dim: head size (even).
        base: ``rope_theta`` (10000).
        interleaved: RoFormer's adjacent pairing (default) or the half-split layout.
    Source: https://kexue.fm/archives/8265
    """

    def __init__(self, dim: int, base: float = 10000.0, interleaved: bool = True) -> None:
        super().__init__()
        if dim % 2:
            raise ConfigError(f"RotaryEmbedding dim must be even, got {dim}")
        self.dim = dim
        self.base = float(base)
        self.interleaved = interleaved

    def tables(self, seq_len: int, device: torch.device | str | None = None,
               positions: torch.Tensor | None = None, dtype: torch.dtype = torch.float32
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cos, sin)``, each ``[L, dim/2]`` (float32 unless ``dtype``), for positions ``0..L-1`` or ``positions``."""
        return rotary_tables(seq_len, self.dim, self.base, positions=positions, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Rotate ``x`` ``[..., L, dim]`` (e.g. ``[B, heads, L, dim]``) at positions ``0..L-1`` or ``positions`` ``[L]``."""
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        cos, sin = self.tables(x.shape[-2], x.device, positions, dtype)
        return apply_rotary(x, cos, sin, self.interleaved)
