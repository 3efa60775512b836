"""Length bucketing: batches of similar-length examples, in a seeded random order.

Each epoch: shuffle the example indices, cut them into chunks of ``chunk_size`` (default 100 global
batches), sort each chunk by length, cut the sorted chunks into global batches and shuffle the order of
the batches (the remainders of the chunks are pooled into whole batches; a final incomplete batch comes
last). Batches then hold examples of similar length (little padding with
:func:`kexue.data.collate.pad_batch`) while the data order stays random. The order depends only on
``(seed, epoch)``.

Distributed data parallel: with ``num_replicas`` processes, every global batch of ``batch_size *
num_replicas`` examples is split into ``num_replicas`` contiguous slices and replica ``rank`` gets slice
``rank``. The union of the replicas' batches at each step is therefore exactly the batch a single
process with ``batch_size * num_replicas`` would get, which keeps multi-process training equivalent to
single-process training over the same global batch.

Standard practice (cf. fairseq/AllenNLP bucket iterators, ``torch.utils.data.DistributedSampler``); CoSENT
("CoSENT(一)", https://kexue.fm/archives/8847) learns only from pairs inside a batch, so shuffling the
batches matters (spec §1 pitfalls).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from kexue.errors import ConfigError


class LengthBucketBatchSampler(Sampler[list[int]]):
    """A batch sampler grouping examples of similar length, deterministic for ``(seed, epoch)``.

    Args:
        lengths: length of every example (e.g. token count, or the longer side of a sentence pair).
        batch_size: examples per batch on each replica.
        chunk_size: examples sorted together; defaults to ``100 * batch_size * num_replicas``.
        shuffle: shuffle examples and batches (training); ``False`` keeps the data order of chunks and
            batches (still sorted by length inside each chunk), for evaluation.
        drop_last: drop the final incomplete global batch; otherwise it is kept (last, never shuffled
            into the middle), and with several replicas it is padded by repeating its indices until it
            splits evenly, so that every replica runs the same number of steps.
        seed: the run's seed.
        num_replicas: number of data-parallel processes (``world_size``).
        rank: this process's rank, ``0 <= rank < num_replicas``.

    Yields:
        Lists of example indices (``list[int]``) of length ``batch_size`` (the last one may be shorter).

    Raises:
        ConfigError: non-positive sizes, a rank outside ``[0, num_replicas)``, or negative lengths.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, chunk_size: int | None = None,
                 shuffle: bool = True, drop_last: bool = False, seed: int = 0, num_replicas: int = 1,
                 rank: int = 0) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size: expected a positive integer, got {batch_size}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ConfigError(f"rank/world_size: expected 0 <= rank < world_size, got rank={rank}, "
                              f"world_size={num_replicas}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if self.lengths.ndim != 1 or (self.lengths < 0).any():
            raise ConfigError("lengths: expected a flat sequence of non-negative integers")
        self.batch_size = batch_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.global_batch_size = batch_size * num_replicas
        self.chunk_size = chunk_size if chunk_size is not None else 100 * self.global_batch_size
        if self.chunk_size < 1:
            raise ConfigError(f"chunk_size: expected a positive integer, got {self.chunk_size}")
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order :meth:`__iter__` yields (call before each epoch)."""
        self.epoch = epoch

    def global_batches(self) -> list[np.ndarray]:
        """All global batches of the current epoch (before splitting across replicas), in order."""
        n, size = len(self.lengths), self.global_batch_size
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        full: list[np.ndarray] = []
        leftovers: list[np.ndarray] = []
        for start in range(0, n, self.chunk_size):
            chunk = order[start:start + self.chunk_size]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            cut = len(chunk) - len(chunk) % size
            full.extend(chunk[i:i + size] for i in range(0, cut, size))
            leftovers.append(chunk[cut:])
        rest = np.concatenate(leftovers) if leftovers else np.zeros(0, dtype=np.int64)
        rest = rest[np.argsort(self.lengths[rest], kind="stable")]
        cut = len(rest) - len(rest) % size
        full.extend(rest[i:i + size] for i in range(0, cut, size))
        if self.shuffle:
            full = [full[i] for i in rng.permutation(len(full))]
        if cut < len(rest) and not self.drop_last:
            full.append(rest[cut:])
        return full

    def __iter__(self) -> Iterator[list[int]]:
        """The batches of this replica for the current epoch."""
        for batch in self.global_batches():
            if self.num_replicas == 1:
                yield batch.tolist()
                continue
            per = -(-len(batch) // self.num_replicas)
            if len(batch) < per * self.num_replicas:
                batch = np.resize(batch, per * self.num_replicas)
            yield batch[self.rank * per:(self.rank + 1) * per].tolist()

    def __len__(self) -> int:
        """Number of batches per epoch on each replica."""
        n = len(self.lengths)
        return n // self.global_batch_size if self.drop_last else -(-n // self.global_batch_size)


def token_budget_batches(lengths: Sequence[int], max_tokens: int, generator, *, max_examples: int | None = None,
                         chunk_size: int = 10_000) -> list[list[int]]:
    """Batches whose padded size ``len(batch) * longest`` stays within ``max_tokens``, in a seeded random order.

    Shuffle the indices (``torch.randperm`` with ``generator``), sort chunks of ``chunk_size`` by length, cut
    each sorted chunk greedily into batches (a batch grows while ``(n + 1) * longest <= max_tokens`` and ``n <
    max_examples``), then shuffle the batches. Every index appears exactly once; an example longer than
    ``max_tokens`` forms a batch of its own. fairseq's ``--max-tokens`` batching, for corpora of very mixed
    lengths where a fixed number of examples per batch wastes most of the compute on padding.

    Raises:
        ConfigError: ``max_tokens`` < 1 or ``max_examples`` < 1.
    """
    import torch

    if max_tokens < 1:
        raise ConfigError(f"--max-tokens: expected a positive integer, got {max_tokens}")
    if max_examples is not None and max_examples < 1:
        raise ConfigError(f"--batch-size: expected a positive integer, got {max_examples}")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = torch.randperm(len(lengths), generator=generator).numpy()
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk_size):
        chunk = order[start:start + chunk_size]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        current: list[int] = []
        longest = 0
        for i in chunk.tolist():
            grown = max(longest, int(lengths[i]))
            if current and ((len(current) + 1) * grown > max_tokens
                            or (max_examples is not None and len(current) >= max_examples)):
                batches.append(current)
                current, grown = [], int(lengths[i])
            current.append(i)
            longest = grown
        if current:
            batches.append(current)
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in perm]
