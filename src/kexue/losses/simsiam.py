"""The SimSiam loss: a predictor on one view regresses the (stop-gradient) representation of the other view.

Source: "从动力学角度看优化算法(六):为什么SimSiam不退化?", https://kexue.fm/archives/7980 (Chen & He, "Exploring
Simple Siamese Representation Learning", arXiv 2011.10566). Su's explanation of why it does not collapse is in
:mod:`kexue.analysis.simsiam`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from kexue.errors import ConfigError

DISTANCES = ("neg_cosine", "mse")


def simsiam_predictor(dim: int, hidden_dim: int | None = None) -> nn.Sequential:
    """The paper's bottleneck predictor ``Linear(d, h) -> BatchNorm -> ReLU -> Linear(h, d)`` (``h`` = d/4)."""
    hidden = hidden_dim or max(1, dim // 4)
    return nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, dim))


class SimSiamLoss(nn.Module):
    """Symmetric SimSiam loss of two views' representations ``z1, z2`` ``[B, D]``::

        L = ½ D(h(z1), sg(z2)) + ½ D(h(z2), sg(z1)),   D = −cos (or squared error)

    with ``h`` the predictor and ``sg`` stop-gradient. On sentence encoders, ``z1``/``z2`` are the pooled vectors
    of two dropout passes or two augmentations of the same sentences.

    Args:
        predictor: ``h``, any module ``[B, D] -> [B, D]`` (e.g. :func:`simsiam_predictor`, or ``nn.Identity()``).
        stop_gradient: detach the targets (True, SimSiam); False lets the gradient flow through both branches
            (the "full gradient" mode of the article's toy, which collapses).
        distance: ``"neg_cosine"`` (−cos, the paper) or ``"mse"`` (``½‖h(z) − z'‖²`` per example, the article's
            toy loss).
    Returns (forward): a scalar tensor (mean over the batch).
    Raises:
        ConfigError: unknown distance; ``z1``/``z2`` of different shapes or not ``[B, D]``.
    """

    def __init__(self, predictor: nn.Module, stop_gradient: bool = True, distance: str = "neg_cosine") -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ConfigError(f"--simsiam-distance: expected one of {DISTANCES}, got {distance!r}")
        self.predictor = predictor
        self.stop_gradient = stop_gradient
        self.distance = distance

    def _d(self, p: Tensor, z: Tensor) -> Tensor:
        if self.stop_gradient:
            z = z.detach()
        if self.distance == "neg_cosine":
            return -F.cosine_similarity(p, z, dim=-1).mean()
        return 0.5 * (p - z).pow(2).sum(-1).mean()

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        """``z1``, ``z2``: ``[B, D]`` float representations of two views -> scalar loss."""
        if z1.dim() != 2 or z1.shape != z2.shape:
            raise ConfigError(f"SimSiamLoss: expected two [batch, dim] tensors of one shape, got "
                              f"{tuple(z1.shape)} and {tuple(z2.shape)}")
        return 0.5 * self._d(self.predictor(z1), z2) + 0.5 * self._d(self.predictor(z2), z1)
