"""Sparse Softmax: a softmax (and its cross-entropy) normalised over the ``k`` largest logits only.

With ``Ω_k`` the indices of the ``k`` largest logits of a row,

    p_i = exp(x_i) / Σ_{j ∈ Ω_k} exp(x_j)   for i ∈ Ω_k, else 0;
    loss = log Σ_{i ∈ Ω_k} exp(x_i) − x_t     (t the target).

Beam search, top-k and top-p sampling zero the tail of the distribution at inference; Sparse Softmax trains the
same way. The article's normaliser does not force the target into ``Ω_k`` (a target outside the top-k still gets the
``−x_t`` gradient); ``include_target=True`` normalises over ``Ω_k ∪ {t}`` instead, which makes the loss the exact
cross-entropy of the sparse distribution and keeps it ``≥ 0``. Tail logits receive no gradient, so use it to
fine-tune, not to train from scratch.

Sources: SPACES, "SPACES:'抽取-生成'式长文本摘要(法研杯总结)", https://kexue.fm/archives/8046 (k = 10 in the seq2seq
loss and at decoding); the definition restated in the author's later softmax survey and arXiv 2112.12433. Spec arch §12.
"""

from __future__ import annotations

import torch
from torch import nn

from kexue.errors import ConfigError

__all__ = ["sparse_softmax", "sparse_softmax_cross_entropy", "SparseSoftmaxCrossEntropy"]

REDUCTIONS = ("mean", "sum", "none")


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"--sparse-k: expected an integer >= 1, got {k!r}")


def _topk_mask(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``min(k, V)`` largest entries of each row (last dim); ties broken as ``torch.topk``."""
    k = min(k, logits.shape[-1])
    index = logits.topk(k, dim=-1).indices
    return torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, index, True)


def sparse_softmax(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Softmax over the ``k`` largest logits of the last dimension, exactly 0 elsewhere.

    Args:
        logits: ``[..., V]`` float.
        k: how many entries keep probability (``k >= V`` is the ordinary softmax).
    Returns:
        probabilities ``[..., V]`` (same dtype), ``min(k, V)`` non-zeros per row (fewer only when some of the kept
        logits are ``-inf``), each row summing to 1.
    Raises:
        ConfigError: ``k`` is not an integer >= 1.
    """
    _check_k(k)
    keep = _topk_mask(logits, k)
    return torch.softmax(logits.masked_fill(~keep, float("-inf")), dim=-1)


def sparse_softmax_cross_entropy(logits: torch.Tensor, target: torch.Tensor, k: int, *,
                                 include_target: bool = False, ignore_index: int = -100,
                                 reduction: str = "mean") -> torch.Tensor:
    """Sparse-softmax cross-entropy ``logsumexp(x[Ω]) − x[t]`` with ``Ω`` the top-``k`` (plus ``t`` if asked).

    Args:
        logits: ``[N, V]`` (or ``[..., V]``) float; computed in float32.
        target: ``[N]`` (or ``[...]``) long class ids; positions equal to ``ignore_index`` count for nothing.
        k: size of the top-k set (``k >= V``: equals ``torch.nn.functional.cross_entropy``).
        include_target: normalise over ``Ω_k ∪ {t}`` (the loss is then ``≥ 0``); ``False`` is the article's form.
        ignore_index: target value to skip.
        reduction: ``"mean"`` over the non-ignored positions (0 when there are none), ``"sum"`` or ``"none"``
            (per position, 0 at ignored ones).
    Returns:
        a scalar (``mean``/``sum``) or a tensor shaped like ``target`` (``none``).
    Raises:
        ConfigError: a bad ``k`` or ``reduction``, or ``target``'s shape not ``logits.shape[:-1]``.
    """
    _check_k(k)
    if reduction not in REDUCTIONS:
        raise ConfigError(f"reduction: expected one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    if tuple(target.shape) != tuple(logits.shape[:-1]):
        raise ConfigError(f"target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}[:-1]")
    x = logits.float()
    valid = target != ignore_index
    t = torch.where(valid, target, torch.zeros_like(target)).long()
    keep = _topk_mask(x, k)
    if include_target:
        keep = keep.scatter(-1, t.unsqueeze(-1), True)
    normaliser = torch.logsumexp(x.masked_fill(~keep, float("-inf")), dim=-1)
    loss = (normaliser - x.gather(-1, t.unsqueeze(-1)).squeeze(-1)) * valid
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum().clamp(min=1)


class SparseSoftmaxCrossEntropy(nn.Module):
    """Module form of :func:`sparse_softmax_cross_entropy` (``forward(logits[N, V], target[N])``).

    Args:
        k: top-k size (SPACES: 10). include_target, ignore_index, reduction: as the function.
    Raises:
        ConfigError: a bad ``k`` (naming ``--sparse-k``) or ``reduction``.
    """

    def __init__(self, k: int = 10, include_target: bool = False, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__()
        _check_k(k)
        if reduction not in REDUCTIONS:
            raise ConfigError(f"reduction: expected one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        self.k, self.include_target, self.ignore_index, self.reduction = k, include_target, ignore_index, reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of ``logits`` ``[..., V]`` against ``target`` ``[...]``."""
        return sparse_softmax_cross_entropy(logits, target, self.k, include_target=self.include_target,
                                            ignore_index=self.ignore_index, reduction=self.reduction)
