"""Normalisation layers of the backbone: LayerNorm (BERT, RoFormer) and RoFormerV2's scale-free RMS norm."""

from __future__ import annotations

import torch
from torch import nn


class ScaleFreeRMSNorm(nn.Module):
    """RMS normalisation without gain or offset: ``y = x / sqrt(mean(x²) + eps)`` over the last axis.

    No parameters, no centring; output RMS is 1 (up to ``eps``). Computed in float32 for half-precision
    inputs and returned in the input dtype.

    Args:
        eps: added to the mean square (RoFormerV2 checkpoints use 1e-12).
    Source: "RoFormerV2:自然语言理解的极限探索", https://kexue.fm/archives/8998
    """

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[..., H]`` -> same shape, each vector divided by its RMS."""
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        out = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


def make_norm(kind: str, dim: int, eps: float) -> nn.Module:
    """``nn.LayerNorm(dim, eps)`` for ``kind="layer_norm"``, :class:`ScaleFreeRMSNorm` for ``"rms_norm"``."""
    if kind == "layer_norm":
        return nn.LayerNorm(dim, eps=eps)
    if kind == "rms_norm":
        return ScaleFreeRMSNorm(eps)
    raise ValueError(f"unknown norm kind {kind!r} (expected 'layer_norm' or 'rms_norm')")
