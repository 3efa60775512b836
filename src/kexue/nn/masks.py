"""Attention masks: bidirectional (padding only), causal (language model) and UniLM (seq2seq prefix).

All builders return boolean "may attend" masks (True = query ``i`` may attend key ``j``) that broadcast to
``[batch, heads, query_len, key_len]``; :func:`mask_to_bias` turns one into the additive score bias.

Source (UniLM mask): "从语言模型到Seq2Seq:Transformer如戏,全靠Mask", https://kexue.fm/archives/6933.
"""

from __future__ import annotations

import torch

from kexue.errors import ConfigError

MASK_KINDS = ("bidirectional", "causal", "unilm")


def padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Key-padding mask ``[B, 1, 1, L]`` bool from ``attention_mask`` ``[B, L]`` (1 = keep, 0 = padding)."""
    return attention_mask.bool()[:, None, None, :]


def causal_mask(seq_len: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Lower-triangular ``[1, 1, L, L]`` bool: ``M[i, j] = 1[j <= i]`` (plain LM mask)."""
    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()[None, None]


def unilm_mask(token_type_ids: torch.Tensor) -> torch.Tensor:
    """UniLM seq2seq mask ``[B, 1, L, L]`` bool from segment ids ``[B, L]`` (0 = source, 1 = target).

    With ``c = cumsum(segment_ids)``, query ``i`` may attend key ``j`` iff ``c[j] <= c[i]``: source tokens see
    the whole source; target tokens see the source and the targets up to themselves.
    """
    c = token_type_ids.long().cumsum(dim=1)
    return (c[:, None, :] <= c[:, :, None])[:, None]


def build_attention_mask(
    kind: str, attention_mask: torch.Tensor | None, token_type_ids: torch.Tensor | None,
    seq_len: int, device: torch.device | str | None = None,
) -> torch.Tensor | None:
    """Combine the structural mask of ``kind`` with key padding; ``None`` when nothing is masked.

    Args:
        kind: ``"bidirectional"``, ``"causal"`` or ``"unilm"``.
        attention_mask: ``[B, L]`` (1 = keep) or ``None``.
        token_type_ids: ``[B, L]`` segment ids, required for ``"unilm"``.
        seq_len: ``L``.
    Returns:
        bool mask broadcastable to ``[B, 1, L, L]`` (True = attend) or ``None`` (attend everywhere).
    Raises:
        ConfigError: unknown ``kind``, or ``"unilm"`` without ``token_type_ids``.
    """
    if kind not in MASK_KINDS:
        raise ConfigError(f"attention mask kind must be one of {MASK_KINDS}, got {kind!r}")
    mask = None
    if attention_mask is not None and not bool(attention_mask.bool().all()):
        mask = padding_mask(attention_mask)
    if kind == "causal":
        structural = causal_mask(seq_len, device)
        mask = structural if mask is None else mask & structural
    elif kind == "unilm":
        if token_type_ids is None:
            raise ConfigError("attention mask kind 'unilm' needs token_type_ids (0 = source, 1 = target)")
        structural = unilm_mask(token_type_ids)
        mask = structural if mask is None else mask & structural
    return mask


def mask_to_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Additive bias: 0 where ``mask`` is True, ``torch.finfo(dtype).min`` where it is False (same shape)."""
    if mask is None:
        return None
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return bias.masked_fill_(~mask, torch.finfo(dtype).min)


def key_counts(mask: torch.Tensor | None, batch: int, seq_len: int, device: torch.device | str | None = None
               ) -> torch.Tensor:
    """Number of keys each query may attend, ``[B or 1, 1, L or 1, 1]`` float (``n`` of the entropy-invariant scale)."""
    if mask is None:
        return torch.full((1, 1, 1, 1), float(seq_len), device=device)
    m = mask.expand(mask.shape[0], 1, mask.shape[2], seq_len)
    return m.sum(dim=-1, keepdim=True).float()
