"""GlobalPointer and Efficient GlobalPointer span scorers, and the vectorized span decoder.

Sources: "GlobalPointer:用统一的方式处理嵌套和非嵌套NER", https://kexue.fm/archives/8373;
"Efficient GlobalPointer:少点参数,多点效果", https://kexue.fm/archives/8877.

Spans are token-index pairs ``(i, j)``, ``i <= j``, both inclusive, 0-based. Score ``s_α(i, j)`` says whether
tokens ``i..j`` form an entity of type ``α``; decoding keeps every cell above a threshold (0 on raw logits).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from kexue.errors import ConfigError
from kexue.nn.rotary import apply_rotary, rotary_tables


def mask_span_logits(logits: Tensor, attention_mask: Tensor | None, tril_mask: bool) -> Tensor:
    """Mask span scores: padded rows and columns, and (optionally) the strict lower triangle ``j < i``.

    Args:
        logits: ``[B, heads, L, L]`` float scores.
        attention_mask: ``[B, L]`` with 1/True = real token, or ``None`` (no padding).
        tril_mask: if True, cells with ``j < i`` (end before start) are masked.

    Returns:
        ``[B, heads, L, L]`` with masked cells set to ``torch.finfo(dtype).min``.
    """
    length = logits.shape[-1]
    masked = torch.zeros(logits.shape[0], 1, length, length, dtype=torch.bool, device=logits.device)
    if attention_mask is not None:
        keep = attention_mask.bool()
        masked = masked | ~(keep[:, None, :, None] & keep[:, None, None, :])
    if tril_mask:
        masked = masked | torch.ones(length, length, dtype=torch.bool, device=logits.device).tril(-1)
    return logits.masked_fill(masked, torch.finfo(logits.dtype).min)


def _check_sizes(hidden_size: int, heads: int, head_size: int, rope: bool) -> None:
    if hidden_size <= 0 or heads <= 0 or head_size <= 0:
        raise ConfigError(
            f"hidden_size, heads, head_size must be positive, got {hidden_size}, {heads}, {head_size}"
        )
    if rope and head_size % 2:
        raise ConfigError(f"head_size must be even when rope=True, got {head_size}")


class GlobalPointer(nn.Module):
    """GlobalPointer: one span-score matrix per type, ``s_α(i, j) = (R_i q_{i,α})·(R_j k_{j,α}) / sqrt(d)``.

    One Dense ``H -> heads·2d`` (bert4keras layout): per head the first ``d`` channels are ``q``, the last ``d``
    are ``k``; RoPE (RoFormer's interleaved pairing, positions ``0..L-1``) rotates ``q`` and ``k`` when ``rope``.

    Args:
        hidden_size: encoder width ``H``.
        heads: number of score matrices ``m`` (entity types; predicates for GPLinker links).
        head_size: ``d`` (64 in all reported runs).
        rope: apply rotary position embedding to ``q`` and ``k`` (essential for NER: −30 F1 without, per the
            article; GPLinker's relation heads turn it off).
        use_bias: bias in the Dense layer.
        tril_mask: mask ``j < i`` (on for entities; off for GPLinker's head–head / tail–tail relation heads, where
            the object may precede the subject).
        rope_base: ``θ_i = rope_base^{-2i/d}``.

    Forward:
        ``hidden_states`` ``[B, L, H]`` float, ``attention_mask`` ``[B, L]`` (1 = real token, optional)
        -> scores ``[B, heads, L, L]``; padded rows/columns (and ``j < i`` with ``tril_mask``) are
        ``torch.finfo(dtype).min``.

    Raises:
        ConfigError: non-positive sizes, odd ``head_size`` with RoPE.

    Source: https://kexue.fm/archives/8373.
    """

    def __init__(self, hidden_size: int, heads: int, head_size: int = 64, rope: bool = True,
                 use_bias: bool = True, tril_mask: bool = True, rope_base: float = 10000.0) -> None:
        super().__init__()
        _check_sizes(hidden_size, heads, head_size, rope)
        self.heads = heads
        self.head_size = head_size
        self.rope = rope
        self.tril_mask = tril_mask
        self.rope_base = float(rope_base)
        self.dense = nn.Linear(hidden_size, heads * head_size * 2, bias=use_bias)

    def project(self, hidden_states: Tensor) -> tuple[Tensor, Tensor]:
        """``q`` and ``k`` after RoPE (if on), each ``[B, heads, L, d]``."""
        batch, length, _ = hidden_states.shape
        proj = self.dense(hidden_states).view(batch, length, self.heads, 2 * self.head_size).transpose(1, 2)
        q, k = proj[..., : self.head_size], proj[..., self.head_size:]
        if self.rope:
            cos, sin = rotary_tables(length, self.head_size, self.rope_base, device=hidden_states.device,
                                     dtype=torch.promote_types(hidden_states.dtype, torch.float32))
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        return q, k

    def forward(self, hidden_states: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Span scores ``[B, heads, L, L]`` for ``hidden_states`` ``[B, L, H]`` (see the class docstring)."""
        q, k = self.project(hidden_states)
        logits = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_size)
        return mask_span_logits(logits, attention_mask, self.tril_mask)


class EfficientGlobalPointer(nn.Module):
    """Efficient GlobalPointer: a shared span score plus a cheap per-type start/end bias.

    ``p = Dense(H -> 2d)(h)``; ``q = p[..., 0::2]``, ``k = p[..., 1::2]`` (even/odd channels), RoPE on ``q, k``;
    ``c = Dense(2d -> 2m)(p) / 2`` from the pre-RoPE ``p``;
    ``s_α(i, j) = q_i·k_j / sqrt(d) + c[j, 2α] + c[i, 2α+1]``: as in bert4keras
    (``logits[:, None] + bias[:, ::2, None] + bias[:, 1::2, :, None]`` on ``bias [B, 2m, L]``), the even type
    channel is indexed by the end position ``j`` and the odd one by the start ``i``, so ``type_dense`` weights
    carry over from a bert4keras head unchanged. Per-type parameters: ``4d`` (+2 bias) instead of
    GlobalPointer's ``2Hd``.

    Args and forward: as :class:`GlobalPointer` (drop-in replacement, same output ``[B, heads, L, L]``).

    Raises:
        ConfigError: non-positive sizes, odd ``head_size`` with RoPE.

    Source: https://kexue.fm/archives/8877.
    """

    def __init__(self, hidden_size: int, heads: int, head_size: int = 64, rope: bool = True,
                 use_bias: bool = True, tril_mask: bool = True, rope_base: float = 10000.0) -> None:
        super().__init__()
        _check_sizes(hidden_size, heads, head_size, rope)
        self.heads = heads
        self.head_size = head_size
        self.rope = rope
        self.tril_mask = tril_mask
        self.rope_base = float(rope_base)
        self.dense = nn.Linear(hidden_size, head_size * 2, bias=use_bias)
        self.type_dense = nn.Linear(head_size * 2, heads * 2, bias=use_bias)

    def forward(self, hidden_states: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Span scores ``[B, heads, L, L]`` for ``hidden_states`` ``[B, L, H]`` (see the class docstring)."""
        length = hidden_states.shape[1]
        proj = self.dense(hidden_states)  # [B, L, 2d]
        q, k = proj[..., 0::2], proj[..., 1::2]
        if self.rope:
            cos, sin = rotary_tables(length, self.head_size, self.rope_base, device=hidden_states.device,
                                     dtype=torch.promote_types(hidden_states.dtype, torch.float32))
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        shared = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_size)  # [B, L, L]
        bias = (self.type_dense(proj) / 2).transpose(1, 2)  # [B, 2m, L]
        # bert4keras: even channel 2α broadcasts over rows (indexed by the end j), odd 2α+1 by the start i
        logits = shared[:, None] + bias[:, 0::2, None, :] + bias[:, 1::2, :, None]
        return mask_span_logits(logits, attention_mask, self.tril_mask)


def span_indices(logits: Tensor, threshold: float = 0.0, special_tokens_mask: Tensor | None = None) -> Tensor:
    """All cells above ``threshold`` as rows ``(batch, head, start, end)`` (vectorized nonzero, no token loops).

    Args:
        logits: ``[B, heads, L, L]`` span scores (already masked as the heads do).
        threshold: keep cells with score ``> threshold`` (0 on raw logits).
        special_tokens_mask: optional ``[B, L]``, True/1 at tokens that cannot start or end a span
            (``[CLS]``, ``[SEP]``; the reference decoder masks index 0 and the last real token).

    Returns:
        ``[N, 4]`` int64, rows sorted by batch, head, start, end.

    Raises:
        ValueError: if ``logits`` is not 4-D.
    """
    if logits.dim() != 4:
        raise ValueError(f"logits must be [B, heads, L, L], got shape {tuple(logits.shape)}")
    hit = logits > threshold
    if hit.device.type == "cpu":  # numpy's flatnonzero is several times faster than torch.nonzero on CPU
        flat = np.flatnonzero(hit.numpy())
        rows = torch.from_numpy(np.stack(np.unravel_index(flat, hit.shape), axis=1).astype(np.int64))
    else:
        rows = torch.nonzero(hit)
    if special_tokens_mask is not None:
        special = special_tokens_mask.bool()
        rows = rows[~(special[rows[:, 0], rows[:, 2]] | special[rows[:, 0], rows[:, 3]])]
    return rows


def decode_spans(
    logits: Tensor, threshold: float = 0.0, special_tokens_mask: Tensor | None = None
) -> list[list[tuple[int, int, int]]] | list[tuple[int, int, int]]:
    """Decode span scores into ``(head, start, end)`` triples (token indices, end inclusive).

    Args:
        logits: ``[B, heads, L, L]`` (returns one list per example) or ``[heads, L, L]`` (returns one list).
        threshold: keep cells with score ``> threshold``.
        special_tokens_mask: ``[B, L]`` (or ``[L]`` for 3-D logits), True at tokens never part of a span.

    Returns:
        Sorted lists of ``(head, start, end)`` int tuples. Nested spans (shared start or end) are all returned.

    Source: https://kexue.fm/archives/8373.
    """
    single = logits.dim() == 3
    if single:
        logits = logits[None]
        if special_tokens_mask is not None:
            special_tokens_mask = special_tokens_mask[None]
    rows = span_indices(logits, threshold, special_tokens_mask)
    counts = torch.bincount(rows[:, 0], minlength=logits.shape[0]).tolist()
    flat = [tuple(r) for r in rows[:, 1:].tolist()]
    out: list[list[tuple[int, int, int]]] = []
    start = 0
    for count in counts:
        out.append(flat[start:start + count])
        start += count
    return out[0] if single else out


def span_labels_dense(spans: list[list[tuple[int, int, int]]], heads: int, length: int) -> Tensor:
    """Multi-hot GlobalPointer targets ``[B, heads, L, L]`` (float32) from ``(head, start, end)`` lists.

    Raises:
        ValueError: a span outside ``[0, heads) x [0, L)^2`` or with ``end < start``.
    """
    labels = torch.zeros(len(spans), heads, length, length)
    index = [(b, h, i, j) for b, example in enumerate(spans) for (h, i, j) in example]
    if index:
        idx = torch.tensor(index, dtype=torch.long)
        bad = (idx[:, 1] < 0) | (idx[:, 1] >= heads) | (idx[:, 2] < 0) | (idx[:, 3] >= length) | (idx[:, 3] < idx[:, 2])
        if bool(bad.any()):
            raise ValueError(f"span outside heads={heads}, length={length}: {index[int(bad.nonzero()[0])]}")
        labels[idx[:, 0], idx[:, 1], idx[:, 2], idx[:, 3]] = 1.0
    return labels
