"""One seed for everything, RNG capture/restore through a weights-only checkpoint, config validation."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from kexue.errors import ConfigError
from kexue.train import TrainerConfig, capture_rng_state, restore_rng_state, seed_everything
from kexue.train.batching import epoch_generator, random_batches, shard_batch


def _draw():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_seed_everything_fixes_python_numpy_and_torch():
    seed_everything(11)
    first = _draw()
    seed_everything(11)
    assert _draw() == first
    seed_everything(12)
    assert _draw() != first


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    seed_everything(5)
    np.random.randn()  # leave a cached Gaussian in NumPy's state
    state = capture_rng_state()
    expected = _draw()
    torch.save(state, tmp_path / "rng.pt")
    seed_everything(99)
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert _draw() == expected


def test_epoch_order_depends_only_on_seed_and_epoch():
    a = random_batches(10, 3, epoch_generator(7, 1))
    assert a == random_batches(10, 3, epoch_generator(7, 1))
    assert a != random_batches(10, 3, epoch_generator(7, 2))
    assert sorted(i for b in a for i in b) == list(range(10)) and [len(b) for b in a] == [3, 3, 3, 1]
    assert [len(b) for b in random_batches(10, 3, epoch_generator(7, 1), drop_last=True)] == [3, 3, 3]


def test_shards_are_contiguous_and_cover_the_batch():
    batch = [9, 4, 7, 1, 0]
    shards = [shard_batch(batch, r, 2) for r in range(2)]
    assert shards[0] + shards[1] == batch and {len(s) for s in shards} == {2, 3}
    with pytest.raises(ConfigError, match="batch_size"):
        shard_batch([1], 0, 2)


@pytest.mark.parametrize("option,value", [("precision", "fp16"), ("epochs", 0), ("warmup_ratio", 1.0),
                                          ("max_grad_norm", 0.0), ("learning_rate", -1.0), ("eval_every", 0),
                                          ("gradient_accumulation_steps", 1.5)])
def test_invalid_options_name_the_option(tmp_path, option, value):
    with pytest.raises(ConfigError, match=option):
        TrainerConfig(output_dir=tmp_path, **{option: value})


def test_to_dict_is_json(tmp_path):
    cfg = TrainerConfig(output_dir=tmp_path, precision="bf16", metric_for_best="spearman")
    back = json.loads(json.dumps(cfg.to_dict()))
    assert back["output_dir"] == str(tmp_path) and back["precision"] == "bf16"
    assert TrainerConfig(**{**back, "adam_betas": tuple(back["adam_betas"])}) == cfg
