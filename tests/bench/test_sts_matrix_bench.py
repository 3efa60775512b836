"""bench/sts_matrix.py's Chinese SimCSE data choice (never the evaluated pairs) and its mean ± std rows."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


@pytest.fixture(scope="module")
def sts(load_bench):
    return load_bench("sts_matrix")


def pair(a, b):
    return SimpleNamespace(text_a=a, text_b=b, label=1)


def test_every_task_trains_on_a_split_other_than_the_evaluated_one(sts):
    evaluated = dict(sts.ZH_TASKS)
    assert set(sts.ZH_SIMCSE_SPLIT) == set(evaluated)
    for task, split in sts.ZH_SIMCSE_SPLIT.items():
        assert split != evaluated[task], task
    assert sts.ZH_SIMCSE_SPLIT["bq"] == "test"  # bq is evaluated on dev; its test is unlabelled text


def test_evaluated_sentences_are_removed_either_side(sts):
    train = ["甲", "乙 ", "丙", "甲", "丁", "戊"]
    evaluated = [pair("乙", "x"), pair("y", " 丁")]
    kept, removed = sts.simcse_zh_sentences(train, evaluated)
    assert kept == ["甲", "丙", "戊"]  # order kept, the repeat of 甲 dropped, 乙 and 丁 held out (after stripping)
    assert removed == 2


def test_no_overlap_and_no_blank(sts):
    train = [f"s{i}" for i in range(50)] + ["", "  "]
    evaluated = [pair(f"s{i}", f"s{i + 1}") for i in range(0, 50, 7)]
    kept, removed = sts.simcse_zh_sentences(train, evaluated)
    held = {t for p in evaluated for t in (p.text_a, p.text_b)}
    assert not held & set(kept) and "" not in kept
    assert len(kept) + removed == 50 and removed == len(held & set(train))  # s50 is evaluated, never trained


def test_mean_std_rows(sts):
    per_seed = [{("cls", "raw"): {"a": 10.0, "b": 20.0}}, {("cls", "raw"): {"a": 14.0, "b": 20.0}}]
    rows = sts.mean_std_rows(per_seed, [("cls", "raw")], ("a", "b"), "m", with_cell=True)
    # a: mean 12, sample std sqrt(8) = 2.83; b: 20 ± 0; avg per seed 15 and 17 -> 16 ± 1.41
    assert rows[2] == "| P1 cls | raw | 12.00 ± 2.83 | 20.00 ± 0.00 | 16.00 ± 1.41 |"
    assert rows[0] == "| m | cell | a | b | avg |" and rows[1] == "|---|---|---|---|---|"
    one = sts.mean_std_rows(per_seed[:1], [("cls", "raw")], ("a",), "m", with_cell=False)
    assert one[2] == "| P1 cls | 10.00 | 10.00 |"


def test_unknown_task_names_the_flag(sts, tmp_path):
    args = SimpleNamespace(simcse_zh_tasks=["atec", "nope"], seeds=[1])
    with pytest.raises(sts.ConfigError, match="--simcse-zh-tasks"):
        sts.part_simcse_zh(args, tmp_path)
