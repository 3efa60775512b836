"""SimBERT's in-batch similarity loss and RoFormer-Sim's cosine-matrix distillation.

Sources: "鱼与熊掌兼得:融合检索和生成的SimBERT模型", https://kexue.fm/archives/7427 (v1) and
"SimBERTv2来了!融合检索和生成的RoFormer-Sim模型", https://kexue.fm/archives/8454 (v2); spec §4.

* **Similarity.** A batch holds each similar pair twice, as rows ``2i`` (A→B) and ``2i + 1`` (B→A); the row vectors
  ``v_r`` are the ``[CLS]`` states through the pooler Dense with linear activation. ``S = scale · norm(V) norm(V)^T``
  with the diagonal masked, and ``L_sim = mean_r CE(softmax(S_r), r XOR 1)``. This is exactly SimCSE's
  ``with-same-view`` form over the interleaved rows (:func:`kexue.losses.simcse.simcse_logits`), which is reused.
* **Distillation.** ``L = (λ / n²) Σ_ij (cos(u_i, u_j) - cos(v_i, v_j))²`` between the teacher's vectors ``u`` and
  the student's ``v`` of the same ``n`` sentences, ``λ = 100``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kexue.losses.simcse import simcse_loss

SIMBERT_SCALE = 30.0
"""The v1 script's similarity scale (v2 stage 1: 20)."""
DISTILL_WEIGHT = 100.0
"""λ of the v2 distillation."""


def similarity_targets(rows: int, device: torch.device | None = None) -> torch.Tensor:
    """The partner of each row of an interleaved pair batch: ``r XOR 1`` (``[rows]`` long)."""
    return torch.arange(rows, device=device) ^ 1


def simbert_similarity_loss(vectors: torch.Tensor, scale: float = SIMBERT_SCALE) -> torch.Tensor:
    """In-batch similarity loss of SimBERT (scalar).

    Args:
        vectors: ``[2n, d]`` float sentence vectors; rows ``2i`` and ``2i + 1`` are the two sentences of pair ``i``.
        scale: the cosine scale (30 in v1, 20 in v2).
    Raises:
        ValueError: an odd number of rows, fewer than 2 pairs (no negative), or not a 2-D tensor.
    """
    if vectors.ndim != 2 or vectors.shape[0] % 2:
        raise ValueError(f"simbert_similarity_loss: expected [2n, d] interleaved pair vectors, got "
                         f"{tuple(vectors.shape)}")
    return simcse_loss(vectors[0::2], vectors[1::2], scale, "with-same-view")


def cosine_matrix(x: torch.Tensor) -> torch.Tensor:
    """``[n, n]`` pairwise cosines of the rows of ``x`` ``[n, d]`` (computed in float32 at least)."""
    x = F.normalize(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x, dim=-1)
    return x @ x.T


def cosine_matrix_distill_loss(teacher: torch.Tensor, student: torch.Tensor,
                               weight: float = DISTILL_WEIGHT) -> torch.Tensor:
    """``weight · mean((C_u - C_v)²)`` over the ``n × n`` cosine matrices of teacher ``u`` and student ``v``.

    Args:
        teacher: ``[n, d_u]`` vectors (no gradient is taken through them); student: ``[n, d_v]`` (the widths may
            differ: only the cosine matrices are compared).
        weight: λ (100).
    Raises:
        ValueError: different numbers of rows, or not 2-D.
    """
    if teacher.ndim != 2 or student.ndim != 2 or teacher.shape[0] != student.shape[0]:
        raise ValueError(f"cosine_matrix_distill_loss: expected [n, d] teacher and student vectors of the same n, "
                         f"got {tuple(teacher.shape)} and {tuple(student.shape)}")
    c_u = cosine_matrix(teacher.detach()).to(torch.float32)
    c_v = cosine_matrix(student).to(torch.float32)
    return weight * (c_u - c_v).pow(2).mean()
