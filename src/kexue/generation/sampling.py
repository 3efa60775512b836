"""Sampling filters: temperature, top-k and top-p (nucleus), as in bert4keras' ``random_sample`` (spec §14.4).

Each filter maps logits ``[N, V]`` to logits of the same shape with the removed tokens at ``-inf``; the kept
tokens keep their logits, so a softmax afterwards renormalises over them.

Sources: bert4keras ``AutoRegressiveDecoder.random_sample`` (top-k, then top-p); SimBERT generation samples
with top-k 5 (v1) and top-p 0.95 (v2), https://kexue.fm/archives/8454.
"""

from __future__ import annotations

import torch

from kexue.errors import ConfigError


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row ``[N, V]`` (the others become ``-inf``); ``k >= V`` keeps all.

    Raises:
        ConfigError: ``k < 1``.
    """
    if k < 1:
        raise ConfigError(f"top_k (--top-k) must be >= 1, got {k}")
    if k >= logits.shape[-1]:
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most probable tokens whose probability mass reaches ``p`` (per row ``[N, V]``).

    Tokens are sorted by probability; a token is kept when the mass of the tokens before it is below ``p``, so the
    token that crosses ``p`` is kept (probabilities ``[0.5, 0.3, 0.2]`` with ``p = 0.6`` keep ``{0, 1}``) and the
    most probable token always is.

    Raises:
        ConfigError: ``p`` outside ``(0, 1]``.
    """
    if not 0.0 < p <= 1.0:
        raise ConfigError(f"top_p (--top-p) must be in (0, 1], got {p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    before = probs.cumsum(dim=-1) - probs
    drop_sorted = before >= p
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_tokens(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row ``[N]`` (long) drawn from ``softmax(filters(logits / temperature))``.

    Args:
        logits: ``[N, V]`` float; ``-inf`` entries are never drawn.
        temperature: ``> 0``; divides the logits before the filters.
        top_k / top_p: optional filters (:func:`top_k_filter`, then :func:`top_p_filter`).
        generator: the ``torch.Generator`` of the draw (reproducible sampling).
    Raises:
        ConfigError: ``temperature <= 0`` or an invalid filter value.
    """
    if not temperature > 0:
        raise ConfigError(f"temperature (--temperature) must be > 0, got {temperature}")
    logits = logits.float() / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)[:, 0]
