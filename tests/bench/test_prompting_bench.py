"""The learning-rate choice of bench/prompting.py: each trained method's own rate, chosen on dev, never on test."""

from __future__ import annotations

import argparse

import pytest


@pytest.fixture(scope="module")
def prompting(load_bench):
    return load_bench("prompting")


def test_choose_reads_dev_not_test(prompting):
    # (dev, test): the best test score sits at the worst dev score; the choice must follow dev
    assert prompting.choose({1e-4: (60.0, 90.0), 1e-3: (70.0, 50.0), 5e-3: (65.0, 80.0)}) == 1e-3


def test_choose_ties_keep_grid_order_and_skip_failed_runs(prompting):
    assert prompting.choose({2e-4: (70.0, 1.0), 1e-3: (70.0, 99.0)}) == 2e-4
    assert prompting.choose({2e-4: None, 1e-3: (10.0, 20.0)}) == 1e-3
    assert prompting.choose({2e-4: None}) is None


def test_each_method_has_its_own_grid(prompting):
    args = argparse.Namespace(lr=[5e-5, 2e-4], ptuning_lr=[6e-4, 3e-3])
    assert prompting.learning_rates("pet", args) == [5e-5, 2e-4]
    assert prompting.learning_rates("finetune", args) == [5e-5, 2e-4]
    assert prompting.learning_rates("ptuning", args) == [6e-4, 3e-3]
    assert prompting.learning_rates("zero-shot", args) == [None]
    assert prompting.learning_rates("nsp", args) == [None]


def test_cell_averages_test_scores_only(prompting):
    assert prompting.cell([(100.0, 40.0), (0.0, 60.0), None]) == "50.0 ± 14.1"
    assert prompting.cell([None]) == "—"
