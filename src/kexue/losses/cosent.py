"""CoSENT: a pairwise ranking loss on the cosines of labelled sentence pairs.

Source: Su Jianlin, "CoSENT(一):比Sentence-BERT更有效的句向量方案", 2022-01-06,
https://kexue.fm/archives/8847 (reference code github.com/bojone/CoSENT). Spec §1.

For the pairs of a batch with labels ``s`` and cosines ``c``::

    L = log(1 + sum_{(i, j): s_i > s_j} exp(lambda * (c_j - c_i)))

Every pair with a higher gold label should get a larger cosine than every pair with a lower label; tied
labels contribute nothing, so a batch whose labels all tie has loss 0. Only the order of the labels
matters (binary 1 > 0, NLI entailment > neutral > contradiction, graded scores by value).

===================================  =========================================================
inputs                               labels
===================================  =========================================================
``(cos_sim[B], labels[B])``          any ordered numbers: 0/1, 0..5 scores, NLI classes 0/1/2
``(emb_a[B, d], emb_b[B, d])``       same, via :func:`cosent_loss_from_embeddings` / module
===================================  =========================================================
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_SCALE = 20.0
"""The post's lambda (= 1 / temperature)."""


def cosent_loss(cos_sim: torch.Tensor, labels: torch.Tensor, scale: float = DEFAULT_SCALE) -> torch.Tensor:
    """CoSENT loss of one batch of sentence pairs (spec §1).

    Computed as ``logsumexp([0, z[mask]])`` with ``z[i, j] = scale * (cos_j - cos_i)`` and
    ``mask[i, j] = labels_i > labels_j``; pairs outside the mask are set to ``-inf`` (not a big finite constant: it
    overflows in fp16). fp16/bf16 inputs are upcast to float32, so they give a finite loss; float32/float64
    inputs keep their dtype.

    Args:
        cos_sim: ``[B]`` cosine similarity of each pair (any float dtype).
        labels: ``[B]`` gold labels, any dtype with an order (int or float).
        scale: lambda; the post uses 20.

    Returns:
        A scalar ``>= 0`` (float32 for half-precision input, else the input dtype); exactly 0 (with zero
        gradient) when no two labels differ.

    Raises:
        ValueError: ``cos_sim`` and ``labels`` are not 1-D tensors of the same length.
    """
    if cos_sim.ndim != 1 or labels.shape != cos_sim.shape:
        raise ValueError(f"cosent_loss: expected cos_sim [B] and labels [B], got {tuple(cos_sim.shape)} and "
                         f"{tuple(labels.shape)}")
    cos = cos_sim.float() if cos_sim.dtype in (torch.float16, torch.bfloat16) else cos_sim
    z = scale * (cos[None, :] - cos[:, None])
    mask = labels[:, None] > labels[None, :]
    z = z.masked_fill(~mask, float("-inf")).flatten()
    return torch.logsumexp(torch.cat([z.new_zeros(1), z]), dim=0)


def cosent_loss_from_embeddings(emb_a: torch.Tensor, emb_b: torch.Tensor, labels: torch.Tensor,
                                scale: float = DEFAULT_SCALE) -> torch.Tensor:
    """CoSENT loss from the two sides' sentence vectors.

    Args:
        emb_a: ``[B, d]`` vectors of the first sentences.
        emb_b: ``[B, d]`` vectors of the second sentences.
        labels: ``[B]`` gold labels.
        scale: lambda (20 in the post).

    Returns:
        The scalar of :func:`cosent_loss` on ``cos(emb_a_i, emb_b_i)`` (half-precision inputs are upcast to
        float32 before the cosine).

    Raises:
        ValueError: shapes do not match.
    """
    if emb_a.ndim != 2 or emb_a.shape != emb_b.shape:
        raise ValueError(f"cosent_loss_from_embeddings: expected emb_a and emb_b of one shape [B, d], got "
                         f"{tuple(emb_a.shape)} and {tuple(emb_b.shape)}")
    if emb_a.dtype in (torch.float16, torch.bfloat16):
        emb_a, emb_b = emb_a.float(), emb_b.float()
    cos = F.cosine_similarity(emb_a, emb_b.to(emb_a.dtype), dim=-1)
    return cosent_loss(cos, labels, scale)


class CoSENTLoss(nn.Module):
    """CoSENT as a module: ``forward(emb_a[B, d], emb_b[B, d], labels[B]) -> scalar``.

    Source: https://kexue.fm/archives/8847 (spec §1).

    Args:
        scale: lambda (default 20).
    """

    def __init__(self, scale: float = DEFAULT_SCALE) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, emb_a: torch.Tensor, emb_b: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss of :func:`cosent_loss_from_embeddings`."""
        return cosent_loss_from_embeddings(emb_a, emb_b, labels, self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"
