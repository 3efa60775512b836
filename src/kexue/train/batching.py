"""The Trainer's data order: epoch-seeded batches of indices, split across ranks, and device transfer.

The order of epoch ``e`` is a pure function of ``(seed, e)`` (a dedicated ``torch.Generator``, never the global
RNG), which is what lets a resumed run skip exactly the batches it already did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from kexue.errors import ConfigError

BatchSampler = Callable[[int, torch.Generator], Iterable[Sequence[int]]]
"""``batch_sampler(epoch, generator) -> global batches of example indices`` for that epoch; it must draw all
its randomness from ``generator`` (e.g. a length-bucketing sampler that shuffles within buckets)."""


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from ``(seed, epoch)`` through NumPy's ``SeedSequence`` (well-mixed,
    so neighbouring seeds or epochs give unrelated orders)."""
    value = int(np.random.SeedSequence([seed % 2**32, epoch]).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator().manual_seed(value)


def random_batches(num_examples: int, batch_size: int, generator: torch.Generator,
                   drop_last: bool = False) -> list[list[int]]:
    """Shuffle ``range(num_examples)`` with ``generator`` and cut it into batches of ``batch_size``.

    Returns:
        lists of indices; the last one is shorter unless ``drop_last`` (then it is dropped).
    """
    order = torch.randperm(num_examples, generator=generator).tolist()
    batches = [order[i:i + batch_size] for i in range(0, num_examples, batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def shard_batch(indices: Sequence[int], rank: int, world_size: int) -> list[int]:
    """Rank ``rank``'s contiguous slice of a global batch (sizes differ by at most one).

    With equal slices, DDP's gradient average over ranks equals the gradient of the mean loss over the
    global batch.

    Raises:
        ConfigError: if the batch has fewer examples than there are processes.
    """
    n = len(indices)
    if n < world_size:
        raise ConfigError(f"--batch-size (batch_size): a batch of {n} examples cannot be split over {world_size} "
                          "processes (raise --batch-size, or set drop_last=True)")
    bounds = np.linspace(0, n, world_size + 1).round().astype(int)
    return list(indices[bounds[rank]:bounds[rank + 1]])


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor inside nested mappings, lists and tuples to ``device`` (other values unchanged;
    mappings come back as plain dicts)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


def count_tokens(batch: Any) -> int | None:
    """Real (unpadded) tokens in a batch: the sum of every tensor whose key contains ``attention_mask`` in a
    mapping batch (so sentence-pair batches with ``attention_mask_a`` / ``_b`` count both sides); ``None`` if
    there is no such key."""
    if not isinstance(batch, Mapping):
        return None
    masks = [v for k, v in batch.items() if "attention_mask" in str(k) and isinstance(v, torch.Tensor)]
    if not masks:
        return None
    return int(sum(int(m.sum().item()) for m in masks))
