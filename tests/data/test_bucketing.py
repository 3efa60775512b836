"""Length-bucketing batch sampler."""

from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import DataLoader

from kexue.data.bucketing import LengthBucketBatchSampler
from kexue.errors import ConfigError

RNG = np.random.default_rng(123)
LENGTHS = RNG.integers(1, 64, size=1003).tolist()


def _flat(batches):
    return [i for b in batches for i in b]


@pytest.mark.parametrize("shuffle", [True, False])
def test_each_index_once_and_len(shuffle):
    sampler = LengthBucketBatchSampler(LENGTHS, batch_size=16, chunk_size=160, shuffle=shuffle, seed=1)
    batches = list(sampler)
    assert sorted(_flat(batches)) == list(range(len(LENGTHS)))
    assert len(batches) == len(sampler) == -(-1003 // 16)
    assert all(len(b) == 16 for b in batches[:-1]) and len(batches[-1]) == 1003 % 16


def test_deterministic_for_seed_and_epoch():
    def run(seed, epoch):
        s = LengthBucketBatchSampler(LENGTHS, batch_size=8, seed=seed)
        s.set_epoch(epoch)
        return list(s)

    assert run(0, 0) == run(0, 0)
    assert run(0, 3) == run(0, 3)
    assert run(0, 0) != run(0, 1)
    assert run(0, 0) != run(1, 0)


def test_batches_are_length_homogeneous_compared_with_random_batches():
    lengths = np.asarray(LENGTHS)
    sampler = LengthBucketBatchSampler(LENGTHS, batch_size=16, chunk_size=1003, seed=0)

    def padding(batches):
        return sum(len(b) * lengths[b].max() - lengths[b].sum() for b in map(np.asarray, batches))

    perm = np.random.default_rng(0).permutation(len(LENGTHS))
    random_batches = [perm[i:i + 16] for i in range(0, len(perm), 16)]
    assert padding(list(sampler)) < 0.1 * padding(random_batches)


def test_sorted_inside_chunks_without_shuffle():
    sampler = LengthBucketBatchSampler(LENGTHS, batch_size=10, chunk_size=100, shuffle=False)
    order = _flat(list(sampler))
    lengths = np.asarray(LENGTHS)
    for start in range(0, 1000, 100):
        chunk = order[start:start + 100]
        assert sorted(chunk) == list(range(start, start + 100))
        assert (np.diff(lengths[chunk]) >= 0).all()


def test_batch_order_is_shuffled_not_sorted():
    sampler = LengthBucketBatchSampler(LENGTHS, batch_size=10, chunk_size=1003, seed=5, drop_last=True)
    maxima = [max(LENGTHS[i] for i in b) for b in sampler]
    assert maxima != sorted(maxima)


def test_drop_last():
    sampler = LengthBucketBatchSampler(LENGTHS, batch_size=16, drop_last=True, seed=2)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 1003 // 16
    assert all(len(b) == 16 for b in batches)
    assert len(set(_flat(batches))) == 16 * (1003 // 16)


@pytest.mark.parametrize("drop_last", [True, False])
def test_distributed_shards_union_is_the_single_process_global_batch(drop_last):
    world, per = 3, 4
    single = LengthBucketBatchSampler(LENGTHS, batch_size=per * world, seed=7, drop_last=drop_last)
    shards = [LengthBucketBatchSampler(LENGTHS, batch_size=per, seed=7, drop_last=drop_last,
                                       num_replicas=world, rank=r) for r in range(world)]
    for s in [single, *shards]:
        s.set_epoch(2)
    global_batches = list(single)
    per_rank = [list(s) for s in shards]
    assert all(len(b) == len(global_batches) == len(s) for b, s in zip(per_rank, shards))
    for step, glob in enumerate(global_batches):
        parts = [per_rank[r][step] for r in range(world)]
        assert len({len(p) for p in parts}) == 1                 # every rank the same batch size
        union = [i for p in parts for i in p]
        if len(glob) == per * world:
            assert union == glob
        else:                                                    # last batch: padded by repetition
            assert set(union) == set(glob) and union[:len(glob)] == glob


def test_dataloader_integration():
    data = [{"n": n} for n in LENGTHS[:50]]
    sampler = LengthBucketBatchSampler([d["n"] for d in data], batch_size=8, seed=0)
    loader = DataLoader(data, batch_sampler=sampler, collate_fn=lambda fs: [f["n"] for f in fs])
    assert sorted(x for b in loader for x in b) == sorted(LENGTHS[:50])


@pytest.mark.parametrize("kwargs", [dict(batch_size=0), dict(batch_size=4, num_replicas=2, rank=2),
                                    dict(batch_size=4, chunk_size=0), dict(batch_size=4, rank=-1)])
def test_bad_options(kwargs):
    with pytest.raises(ConfigError):
        LengthBucketBatchSampler(LENGTHS, **kwargs)


def test_negative_lengths_rejected():
    with pytest.raises(ConfigError, match="lengths"):
        LengthBucketBatchSampler([3, -1], batch_size=1)
