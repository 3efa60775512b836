"""Sentence-BERT baselines that CoSENT is compared with.

Source: Nils Reimers, Iryna Gurevych, "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks",
EMNLP 2019, arXiv 1908.10084; used as the baseline in "CoSENT(一)", https://kexue.fm/archives/8847
(spec §1, reference ``sbert.py`` of github.com/bojone/CoSENT).

===========================  ========================================  =====================================
loss                         inputs                                    labels
===========================  ========================================  =====================================
:class:`SoftmaxLoss`         ``emb_a[B, d]``, ``emb_b[B, d]``          class ids ``[B]`` in ``[0, num_labels)``
:func:`cosine_mse_loss`      ``cos_sim[B]``                            graded scores ``[B]`` (e.g. 0..5)
:class:`CosineMSELoss`       ``emb_a[B, d]``, ``emb_b[B, d]``          graded scores ``[B]``
===========================  ========================================  =====================================

The softmax objective trains a classifier over ``[u; v; |u - v|]`` but the model is then used through
``cos(u, v)``, a train/test mismatch the post criticizes; the cosine-MSE variant regresses the cosine onto
the score mapped linearly to [0, 1] (the Sentence-BERT paper's STS-B regression objective).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SoftmaxLoss(nn.Module):
    """Softmax classifier over ``[u; v; |u - v|]`` with cross-entropy (Sentence-BERT classification head).

    Args:
        embedding_dim: ``d``, the sentence-vector size.
        num_labels: number of classes ``C`` (2 for binary matching, 3 for NLI).
        concat_u, concat_v, concat_abs_diff: which of ``u``, ``v``, ``|u - v|`` enter the classifier (all
            three by default, the paper's best setting).

    Raises:
        ValueError: ``num_labels < 2`` or no feature selected.
    """

    def __init__(self, embedding_dim: int, num_labels: int, *, concat_u: bool = True, concat_v: bool = True,
                 concat_abs_diff: bool = True) -> None:
        super().__init__()
        parts = int(concat_u) + int(concat_v) + int(concat_abs_diff)
        if num_labels < 2 or parts == 0:
            raise ValueError(f"SoftmaxLoss: expected num_labels >= 2 and at least one of u, v, |u-v|; got "
                             f"num_labels={num_labels}, {parts} feature(s)")
        self.embedding_dim = embedding_dim
        self.num_labels = num_labels
        self.concat_u, self.concat_v, self.concat_abs_diff = concat_u, concat_v, concat_abs_diff
        self.classifier = nn.Linear(parts * embedding_dim, num_labels)

    def features(self, emb_a: torch.Tensor, emb_b: torch.Tensor) -> torch.Tensor:
        """The classifier input ``[B, k * d]``: the selected blocks of ``[u; v; |u - v|]`` in that order."""
        blocks = []
        if self.concat_u:
            blocks.append(emb_a)
        if self.concat_v:
            blocks.append(emb_b)
        if self.concat_abs_diff:
            blocks.append((emb_a - emb_b).abs())
        return torch.cat(blocks, dim=-1)

    def logits(self, emb_a: torch.Tensor, emb_b: torch.Tensor) -> torch.Tensor:
        """Class logits ``[B, C]`` for the pairs ``(emb_a[B, d], emb_b[B, d])``."""
        return self.classifier(self.features(emb_a, emb_b))

    def forward(self, emb_a: torch.Tensor, emb_b: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the classifier on ``labels`` (``[B]`` int64 class ids).

        Raises:
            ValueError: a label outside ``[0, num_labels)`` or shapes that do not match.
        """
        if emb_a.shape != emb_b.shape or labels.shape != emb_a.shape[:1]:
            raise ValueError(f"SoftmaxLoss: expected emb_a, emb_b [B, d] and labels [B], got "
                             f"{tuple(emb_a.shape)}, {tuple(emb_b.shape)}, {tuple(labels.shape)}")
        labels = labels.long()
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_labels):
            raise ValueError(f"SoftmaxLoss: labels must be class ids in [0, {self.num_labels}), found range "
                             f"[{int(labels.min())}, {int(labels.max())}]")
        return F.cross_entropy(self.logits(emb_a, emb_b).float(), labels)


def cosine_mse_loss(cos_sim: torch.Tensor, scores: torch.Tensor,
                    score_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Mean squared error between each pair's cosine and its score mapped linearly to [0, 1].

    Args:
        cos_sim: ``[B]`` cosines.
        scores: ``[B]`` gold scores in ``score_range`` units (e.g. STS-B 0..5 with ``score_range=(0, 5)``).
        score_range: ``(low, high)``; ``low`` maps to 0 and ``high`` to 1.

    Returns:
        A float32 scalar.

    Raises:
        ValueError: shapes differ or ``high <= low``.
    """
    low, high = score_range
    if high <= low:
        raise ValueError(f"cosine_mse_loss: score_range must have high > low, got {score_range}")
    if cos_sim.shape != scores.shape or cos_sim.ndim != 1:
        raise ValueError(f"cosine_mse_loss: expected cos_sim [B] and scores [B], got {tuple(cos_sim.shape)} "
                         f"and {tuple(scores.shape)}")
    target = (scores.to(torch.float32) - low) / (high - low)
    return F.mse_loss(cos_sim.to(torch.float32), target)


class CosineMSELoss(nn.Module):
    """:func:`cosine_mse_loss` on the cosine of two embedding batches.

    Args:
        score_range: ``(low, high)`` of the gold scores, mapped to [0, 1].
    """

    def __init__(self, score_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__()
        self.score_range = score_range

    def forward(self, emb_a: torch.Tensor, emb_b: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """MSE between ``cos(emb_a[B, d], emb_b[B, d])`` (float32) and the mapped ``scores[B]``."""
        cos = F.cosine_similarity(emb_a.to(torch.float32), emb_b.to(torch.float32), dim=-1)
        return cosine_mse_loss(cos, scores, self.score_range)

    def extra_repr(self) -> str:
        return f"score_range={self.score_range}"
