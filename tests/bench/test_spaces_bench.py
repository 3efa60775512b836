"""bench/spaces.py's aggregation over seeds and its seq2seq sibling's model wording (hand-computed values)."""

from __future__ import annotations

import math

import pytest

from kexue.errors import ConfigError


@pytest.fixture(scope="module")
def spaces(load_bench):
    return load_bench("spaces")


def test_mean_std_two_values(spaces):
    mean, std = spaces.mean_std([10.0, 14.0])
    assert mean == 12.0
    assert math.isclose(std, math.sqrt(8.0))  # sample std: ((2² + 2²) / (2 - 1)) ** 0.5


def test_mean_std_single_value_has_zero_spread(spaces):
    assert spaces.mean_std([3.5]) == (3.5, 0.0)


def test_aggregate_per_metric(spaces):
    per_seed = {42: {"rouge1": 20.0, "rouge2": 5.0}, 43: {"rouge1": 22.0, "rouge2": 9.0}}
    agg = spaces.aggregate(per_seed)
    assert agg["rouge1"][0] == 21.0 and math.isclose(agg["rouge1"][1], math.sqrt(2.0))
    assert agg["rouge2"][0] == 7.0 and math.isclose(agg["rouge2"][1], math.sqrt(8.0))


def test_bad_budget_names_the_flag(spaces):
    with pytest.raises(ConfigError, match="--train-limit"):
        spaces.main(["--train-limit", "0", "--no-write"])
    with pytest.raises(ConfigError, match="--lr"):
        spaces.main(["--lr", "-1", "--no-write"])


def test_seq2seq_wording_states_the_model(load_bench):
    seq2seq = load_bench("seq2seq")
    from kexue.tasks.common import ScratchModel

    line = seq2seq.model_line("kexue-zh-mini", ScratchModel())
    assert "kexue-zh-mini" in line and "no pretrained" not in line
    assert "not pretrained" in seq2seq.model_line("scratch", ScratchModel())
