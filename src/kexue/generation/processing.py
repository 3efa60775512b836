"""Logits processors: the hook through which constraints (a prefix trie, a banned set …) edit next-token scores.

A processor is any callable ``processor(target_ids, logits, rows) -> logits``:

- ``target_ids``: ``[N, t]`` long, the target tokens generated so far by each live row (the source excluded);
- ``logits``: ``[N, V]`` float, the row's next-token logits (raw model output, or the previous processor's);
- ``rows``: ``[N]`` long, the index of each row's example in the batch given to ``generate`` (per-example data
  such as the question ids of the trie look-ahead);
- it returns ``[N, V]`` logits; ``-inf`` forbids a token.

A processor may declare ``required_new_tokens`` (int): ``generate`` refuses a smaller ``max_new_tokens`` (the trie
constraint's guarantee that every output ends with the end token needs room for the longest key plus the end).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from kexue.errors import ConfigError

LogitsProcessor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def as_processor_list(processors: LogitsProcessor | Sequence[LogitsProcessor] | None) -> list[LogitsProcessor]:
    """``None`` -> ``[]``, one callable -> ``[it]``, a sequence -> a list (applied in order).

    Raises:
        ConfigError: an element that is not callable.
    """
    if processors is None:
        return []
    items = [processors] if callable(processors) else list(processors)
    for item in items:
        if not callable(item):
            raise ConfigError(f"logits_processor items must be callables (target_ids, logits, rows) -> logits, "
                              f"got {type(item).__name__}")
    return items


def apply_processors(processors: list[LogitsProcessor], target_ids: torch.Tensor, logits: torch.Tensor,
                     rows: torch.Tensor) -> torch.Tensor:
    """Run ``processors`` in order on ``logits`` ``[N, V]`` (float32 copy; the input is left untouched)."""
    logits = logits.float()
    for processor in processors:
        logits = processor(target_ids, logits, rows)
    return logits


def without_nan(x: torch.Tensor) -> torch.Tensor:
    """``x`` with NaN replaced by ``-inf`` (infinities kept, unlike ``nan_to_num``'s defaults)."""
    return x.masked_fill(torch.isnan(x), float("-inf"))


def log_probs(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``log_softmax(logits / temperature)`` ``[N, V]`` with rows that have no finite logit all ``-inf`` (never NaN)."""
    return without_nan(torch.log_softmax(logits / temperature, dim=-1))
