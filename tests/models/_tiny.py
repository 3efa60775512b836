"""Helpers for the backbone tests: tiny random transformers checkpoints and padded batches."""

from __future__ import annotations

import torch

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64, type_vocab_size=2, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0)


def padded_batch(vocab_size: int = 99, lengths=(11, 7, 3), seed: int = 1):
    """``(input_ids, attention_mask, token_type_ids)`` ``[3, 11]`` with right padding (pad id 0)."""
    g = torch.Generator().manual_seed(seed)
    length = max(lengths)
    ids = torch.randint(5, vocab_size, (len(lengths), length), generator=g)
    mask = torch.zeros(len(lengths), length, dtype=torch.long)
    types = torch.zeros(len(lengths), length, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
        ids[i, n:] = 0
        types[i, n // 2:n] = 1
    return ids, mask, types


def max_diff(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Max absolute difference (over real tokens only when ``mask`` ``[B, L]`` is given)."""
    d = (a - b).abs()
    if mask is not None:
        d = d[mask.bool()]
    return d.max().item()
