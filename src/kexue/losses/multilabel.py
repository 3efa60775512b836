"""Multi-label categorical cross-entropy (ZLPR), dense and sparse.

Source: "将'Softmax+交叉熵'推广到多标签分类问题", https://kexue.fm/archives/7359 (paper: ZLPR, arXiv 2208.02955);
sparse form from "GPLinker:基于GlobalPointer的实体关系联合抽取", https://kexue.fm/archives/8888.

For scores ``s`` (raw logits, no sigmoid), positive set ``P`` and negative set ``N``, with the threshold class
fixed at score 0::

    L = log(1 + sum_{j in P} exp(-s_j)) + log(1 + sum_{i in N} exp(s_i))

Prediction: every class with ``s > 0``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _logsumexp_with_zero(x: Tensor) -> Tensor:
    """``log(1 + sum(exp(x)))`` over the last axis (appends the threshold score 0)."""
    zeros = torch.zeros_like(x[..., :1])
    return torch.logsumexp(torch.cat([x, zeros], dim=-1), dim=-1)


def multilabel_categorical_crossentropy(
    y_true: Tensor, y_pred: Tensor, mask: Tensor | None = None
) -> Tensor:
    """Dense multi-label categorical cross-entropy.

    Computes ``log(1 + Σ_{j∈P} e^{−s_j}) + log(1 + Σ_{i∈N} e^{s_i})`` per row, where ``P = {y_true > 0.5}``.

    Args:
        y_true: ``[..., n]`` multi-hot labels (0/1, any float or integer dtype).
        y_pred: ``[..., n]`` raw scores (logits). Cells already masked to ``torch.finfo(dtype).min`` or ``-inf``
            (as GlobalPointer does for padding and the lower triangle) contribute 0 to the negative term.
        mask: optional ``[..., n]`` boolean; cells with ``False`` are removed from both terms (they are
            neither positive nor negative). Use it when scores are not masked already.

    Returns:
        ``[...]`` per-row loss (float, same dtype as ``y_pred``), no reduction.

    Note:
        A cell marked positive whose score is ``-inf`` gives ``+inf``; with ``finfo.min`` it gives a huge finite
        loss. Both signal a label on a masked cell, which is a data bug.

    Raises:
        ValueError: if the shapes of ``y_true``, ``y_pred`` (and ``mask``) differ.

    Source: https://kexue.fm/archives/7359.
    """
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true shape {tuple(y_true.shape)} != y_pred shape {tuple(y_pred.shape)}")
    positive = y_true > 0.5
    negative = ~positive
    if mask is not None:
        if mask.shape != y_pred.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} != y_pred shape {tuple(y_pred.shape)}")
        mask = mask.bool()
        positive = positive & mask
        negative = negative & mask
    neg_inf = torch.tensor(float("-inf"), dtype=y_pred.dtype, device=y_pred.device)
    neg_scores = torch.where(negative, y_pred, neg_inf)
    pos_scores = torch.where(positive, -y_pred, neg_inf)
    return _logsumexp_with_zero(neg_scores) + _logsumexp_with_zero(pos_scores)


def sparse_multilabel_categorical_crossentropy(
    y_true: Tensor, y_pred: Tensor, mask_zero: bool = False, eps: float = 1e-7
) -> Tensor:
    """Sparse multi-label categorical cross-entropy: labels given as the indices of the positive classes.

    With ``A`` all classes, ``a = log(1 + Σ_{i∈A} e^{s_i})`` and ``b = log Σ_{i∈P} e^{s_i}``, the negative term is
    ``a + log(1 − e^{b−a})`` (the ``1 − e^{b−a}`` factor clipped to ``[eps, 1]``) and the positive term is
    ``log(1 + Σ_{j∈P} e^{−s_j})``. Equals :func:`multilabel_categorical_crossentropy` when the positive indices
    are distinct, without building an ``n``-wide label tensor (GPLinker's ``n = L²`` per head).

    Args:
        y_true: ``[..., k]`` int64 indices of positive classes into the last axis of ``y_pred``, padded.
            Indices must be distinct within a row (padding excepted when ``mask_zero``).
        y_pred: ``[..., n]`` raw scores; masked cells at ``finfo.min`` or ``-inf`` contribute 0.
        mask_zero: class 0 is padding: it is removed from both ``P`` and ``A``, so ``y_true`` rows may be
            padded with 0 and class 0 must never be a real label (for token pairs flat index 0 is the
            ``([CLS], [CLS])`` cell).
        eps: lower clip of ``1 − e^{b−a}`` (guards ``log 0`` when the positives carry all the mass).

    Returns:
        ``[...]`` per-row loss, no reduction.

    Raises:
        ValueError: if the leading shapes of ``y_true`` and ``y_pred`` differ.

    Source: https://kexue.fm/archives/8888 (and bert4keras ``sparse_multilabel_categorical_crossentropy``).
    """
    if y_true.shape[:-1] != y_pred.shape[:-1]:
        raise ValueError(
            f"leading shapes differ: y_true {tuple(y_true.shape)} vs y_pred {tuple(y_pred.shape)}"
        )
    y_true = y_true.long()
    zeros = torch.zeros_like(y_pred[..., :1])
    if mask_zero:
        pos_source = torch.cat([zeros + float("inf"), y_pred[..., 1:]], dim=-1)
        all_source = torch.cat([zeros + float("-inf"), y_pred[..., 1:]], dim=-1)
    else:
        pos_source = all_source = y_pred
    pos_scores = torch.gather(pos_source, -1, y_true)  # padding -> +inf -> e^{-inf} = 0
    pos_loss = _logsumexp_with_zero(-pos_scores)
    all_loss = _logsumexp_with_zero(all_source)
    pos_in_all = torch.gather(all_source, -1, y_true)  # padding -> -inf -> e^{-inf} = 0
    aux = torch.logsumexp(pos_in_all, dim=-1) - all_loss
    aux = torch.clamp(1.0 - torch.exp(aux), min=eps, max=1.0)
    return pos_loss + all_loss + torch.log(aux)


class MultilabelCategoricalCrossentropy(nn.Module):
    """Module form of the multi-label categorical cross-entropy (dense or sparse), with a reduction.

    Args:
        sparse: if True, ``forward(y_true, y_pred)`` takes index labels (see
            :func:`sparse_multilabel_categorical_crossentropy`), else multi-hot labels.
        mask_zero: sparse form only: class 0 is padding.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` over all leading axes.

    Raises:
        ValueError: on an unknown ``reduction``.

    Source: https://kexue.fm/archives/7359, https://kexue.fm/archives/8888.
    """

    def __init__(self, sparse: bool = False, mask_zero: bool = False, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.sparse = sparse
        self.mask_zero = mask_zero
        self.reduction = reduction

    def forward(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        """Loss of ``y_pred`` ``[..., n]`` against ``y_true`` (``[..., n]`` dense or ``[..., k]`` sparse)."""
        if self.sparse:
            loss = sparse_multilabel_categorical_crossentropy(y_true, y_pred, mask_zero=self.mask_zero)
        else:
            loss = multilabel_categorical_crossentropy(y_true, y_pred)
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss
