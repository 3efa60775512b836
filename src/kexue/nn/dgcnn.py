"""DGCNN: residual gated dilated 1-D convolutions, and the SPACES clause extractor built from them.

Block (SPACES' ``ResidualGatedConv1D``): ``u = Conv1D(2·H, kernel, dilation)(x)``, ``y = x + α·LN(u_a ⊙ σ(u_b))``
with ``u_a, u_b`` the two halves of ``u`` and a scalar ``α`` initialised 0, so a freshly built block is the identity
and training opens each residual branch from zero. Padding positions are zeroed before every convolution, so they
never leak into real positions.

Sources: "SPACES:'抽取-生成'式长文本摘要(法研杯总结)", https://kexue.fm/archives/8046 (bojone/SPACES ``extract_model.py``);
DGCNN, "基于CNN的阅读理解式问答模型:DGCNN", https://kexue.fm/archives/5409. Spec arch §12 step 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from kexue.errors import ConfigError

__all__ = ["GatedDilatedConv", "DGCNNExtractor"]


class GatedDilatedConv(nn.Module):
    """One residual gated dilated convolution block: ``[B, L, H] -> [B, L, H]``.

    Args:
        hidden: channels ``H``. kernel: odd kernel width (``same`` padding). dilation: >= 1.
    Raises:
        ConfigError: an even ``kernel`` or a value < 1.
    """

    def __init__(self, hidden: int, kernel: int = 3, dilation: int = 1) -> None:
        super().__init__()
        if kernel < 1 or kernel % 2 == 0 or dilation < 1 or hidden < 1:
            raise ConfigError(f"GatedDilatedConv: expected hidden >= 1, an odd kernel and dilation >= 1, got "
                              f"hidden={hidden}, kernel={kernel}, dilation={dilation}")
        self.conv = nn.Conv1d(hidden, 2 * hidden, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
        self.norm = nn.LayerNorm(hidden)
        self.alpha = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[B, L, H]`` float, ``mask`` ``[B, L]`` (1 = real position) -> ``[B, L, H]`` (padding rows 0)."""
        if mask is not None:
            x = x * mask[..., None].to(x.dtype)
        a, b = self.conv(x.transpose(1, 2)).transpose(1, 2).chunk(2, dim=-1)
        y = x + self.alpha * self.norm(a * torch.sigmoid(b))
        return y if mask is None else y * mask[..., None].to(y.dtype)


class DGCNNExtractor(nn.Module):
    """SPACES' extractor: clause vectors ``[B, L, input_size]`` -> per-clause selection logits ``[B, L]``.

    Dropout -> Dense(hidden, no bias) -> residual gated dilated blocks (Dropout between) -> Dense(1). Train with
    ``binary_cross_entropy_with_logits`` on the oracle labels; select clauses with ``sigmoid(logit) > 0.2``.

    Args:
        input_size: clause-vector size (768 for RoBERTa-base). hidden: block channels (384). dilations: one block
            each (SPACES: 1, 2, 4, 8, 1, 1). kernel: 3. dropout: 0.1.
    """

    def __init__(self, input_size: int = 768, hidden: int = 384, dilations: Sequence[int] = (1, 2, 4, 8, 1, 1),
                 kernel: int = 3, dropout: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"DGCNNExtractor: dropout must be in [0, 1), got {dropout}")
        self.dropout = nn.Dropout(dropout)
        self.project = nn.Linear(input_size, hidden, bias=False)
        self.blocks = nn.ModuleList(GatedDilatedConv(hidden, kernel, d) for d in dilations)
        self.score = nn.Linear(hidden, 1)

    def forward(self, vectors: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``vectors`` ``[B, L, input_size]``, ``mask`` ``[B, L]`` -> logits ``[B, L]`` (padding: ``-inf``)."""
        x = self.project(self.dropout(vectors))
        for block in self.blocks:
            x = self.dropout(block(x, mask))
        logits = self.score(x)[..., 0]
        return logits if mask is None else logits.masked_fill(~mask.bool(), float("-inf"))
