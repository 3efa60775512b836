"""Unsupervised SimCSE: in-batch InfoNCE where the positive is the same sentence under another dropout mask.

Sources: Gao, Yao, Chen, "SimCSE: Simple Contrastive Learning of Sentence Embeddings", EMNLP 2021
(https://arxiv.org/abs/2104.08821); Su Jianlin, "中文任务还是SOTA吗?我们给SimCSE补充了一些实验", 2021-04-26,
https://kexue.fm/archives/8348 (reference code github.com/bojone/SimCSE). Spec §3.

Two views ``h0[N, d]`` and ``h1[N, d]`` of the same ``N`` sentences (two train-mode passes), cosines scaled by
``s = 1 / tau`` (20 in both sources):

=====================  ==========================================================================================
``negatives``          loss
=====================  ==========================================================================================
``cross-view``         the paper and sentence-transformers' MultipleNegativesRankingLoss: for each ``i`` of view 0,
                       ``-log softmax_j(s cos(h0_i, h1_j))[i]``, mean over the ``N`` rows
``with-same-view``     Su's code: the ``2N`` vectors interleaved ``[h0_1, h1_1, h0_2, h1_2, …]``; each row's
                       logits are ``s cos`` with all ``2N - 1`` others (itself masked), target its partner;
                       mean over the ``2N`` rows. The other view *and* the same view of other sentences are
                       negatives.
=====================  ==========================================================================================
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_SCALE = 20.0
"""``1 / tau`` with the sources' ``tau = 0.05``."""
NEGATIVES = ("cross-view", "with-same-view")


def simcse_logits(emb0: torch.Tensor, emb1: torch.Tensor, scale: float = DEFAULT_SCALE,
                  negatives: str = "cross-view") -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, targets)`` of the SimCSE cross-entropy (see the module table).

    Returns:
        ``cross-view``: logits ``[N, N]``, targets ``arange(N)``; ``with-same-view``: logits ``[2N, 2N]`` with the
        diagonal at ``-inf``, targets ``r XOR 1`` (row ``2i`` is ``h0_i``, row ``2i + 1`` is ``h1_i``). float32 for
        half-precision inputs, else the input dtype.

    Raises:
        ValueError: the views differ in shape or are not ``[N, d]``; an unknown ``negatives``.
    """
    if emb0.ndim != 2 or emb0.shape != emb1.shape:
        raise ValueError(f"simcse_loss: expected two views of one shape [N, d], got {tuple(emb0.shape)} and "
                         f"{tuple(emb1.shape)}")
    if negatives not in NEGATIVES:
        raise ValueError(f"--negatives: expected one of {', '.join(NEGATIVES)}, got {negatives!r}")
    if emb0.dtype in (torch.float16, torch.bfloat16):
        emb0, emb1 = emb0.float(), emb1.float()
    emb1 = emb1.to(emb0.dtype)
    n = emb0.shape[0]
    a, b = F.normalize(emb0, dim=-1), F.normalize(emb1, dim=-1)
    if negatives == "cross-view":
        return scale * a @ b.T, torch.arange(n, device=emb0.device)
    z = torch.stack([a, b], dim=1).reshape(2 * n, -1)  # [h0_1, h1_1, h0_2, h1_2, ...]
    logits = (scale * z @ z.T).masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    return logits, torch.arange(2 * n, device=z.device) ^ 1


def simcse_loss(emb0: torch.Tensor, emb1: torch.Tensor, scale: float = DEFAULT_SCALE,
                negatives: str = "cross-view") -> torch.Tensor:
    """Unsupervised SimCSE loss (scalar, mean cross-entropy over the rows of :func:`simcse_logits`).

    Args:
        emb0, emb1: ``[N, d]`` sentence vectors of the same ``N`` sentences from two dropout passes (row ``i`` of
            both is sentence ``i``; the ``N`` sentences must be distinct, a repeat is a false negative).
        scale: ``1 / tau`` (20).
        negatives: ``cross-view`` or ``with-same-view``.

    Raises:
        ValueError: as :func:`simcse_logits`; fewer than 2 sentences (no negative).
    """
    if emb0.ndim == 2 and emb0.shape[0] < 2:
        raise ValueError(f"simcse_loss: needs at least 2 sentences per batch (in-batch negatives), got {emb0.shape[0]}")
    logits, targets = simcse_logits(emb0, emb1, scale, negatives)
    return F.cross_entropy(logits, targets)


class SimCSELoss(nn.Module):
    """:func:`simcse_loss` as a module: ``forward(emb0[N, d], emb1[N, d]) -> scalar``.

    Source: https://kexue.fm/archives/8348, https://arxiv.org/abs/2104.08821.
    """

    def __init__(self, scale: float = DEFAULT_SCALE, negatives: str = "cross-view") -> None:
        super().__init__()
        if negatives not in NEGATIVES:
            raise ValueError(f"--negatives: expected one of {', '.join(NEGATIVES)}, got {negatives!r}")
        self.scale, self.negatives = scale, negatives

    def forward(self, emb0: torch.Tensor, emb1: torch.Tensor) -> torch.Tensor:
        """The loss of :func:`simcse_loss`."""
        return simcse_loss(emb0, emb1, self.scale, self.negatives)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, negatives={self.negatives!r}"
