"""bench/matching.py's learning-rate choice: by valid accuracy, never by test."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def matching(load_bench):
    return load_bench("matching")


def test_choose_lr_follows_valid(matching):
    runs = [{"lr": 2e-4, "valid_accuracy": 70.0, "test_accuracy": 90.0},
            {"lr": 1e-3, "valid_accuracy": 75.0, "test_accuracy": 60.0}]
    assert matching.choose_lr(runs) == 1e-3


def test_choose_lr_ties_keep_the_first(matching):
    runs = [{"lr": 5e-4, "valid_accuracy": 70.0, "test_accuracy": 1.0},
            {"lr": 1e-3, "valid_accuracy": 70.0, "test_accuracy": 99.0}]
    assert matching.choose_lr(runs) == 5e-4


def test_choose_lr_refuses_nothing(matching):
    with pytest.raises(ValueError):
        matching.choose_lr([])
