"""The data of `train match`: binarisation rules on real rows, the seeded valid cut, the overlap guard (checked by
brute force against every evaluated split), and the F1 / accuracy of the recipe on a hand example."""

from __future__ import annotations

import pytest

from kexue.errors import ConfigError, DataFormatError
from kexue.tasks.match import binary_scores
from kexue.tasks.match_data import MATCH_TASKS, load_match_tasks, pair_key, parse_tasks

ALL = ("afqmc", "stsb_zh", "simclue_sample")


@pytest.fixture(scope="module")
def tasks(kexue_data):
    return load_match_tasks(ALL, valid_size=500, seed=3)


def test_stsb_zh_binarised_at_three(kexue_data):
    # the first five lines of STS-B.train.data score 5, 3, 3, 2, 4
    rows = MATCH_TASKS["stsb_zh"].read("train")[:5]
    assert [r.label for r in rows] == [5, 3, 3, 2, 4]
    assert [MATCH_TASKS["stsb_zh"].binarise(r, "x") for r in rows] == [1, 1, 1, 0, 1]


def test_splits_sizes_and_no_evaluated_pair_is_trained_on(tasks, kexue_data):
    by_name = {t.name: t for t in tasks}
    # afqmc: 34,334 train lines, 500 cut as valid; test = the 4,316 labelled dev lines; simclue: 10,000 and 28,031
    assert len(by_name["afqmc"].train) + by_name["afqmc"].removed_overlaps + 500 == 34334
    assert len(by_name["afqmc"].test) == 4316 and len(by_name["simclue_sample"].test) == 28031
    assert len(by_name["simclue_sample"].train) + by_name["simclue_sample"].removed_overlaps + 500 == 10000
    assert (len(by_name["stsb_zh"].valid), len(by_name["stsb_zh"].test)) == (1458, 1361)
    # SOURCE.md: SimCLUE's test_public holds a few STS-B train pairs; the guard must have removed some
    assert by_name["stsb_zh"].removed_overlaps > 0
    evaluated = set()
    for t in tasks:
        for a, b, _ in t.valid + t.test:
            evaluated.add((a.strip(), b.strip()))
            evaluated.add((b.strip(), a.strip()))
    for t in tasks:
        assert not any((a.strip(), b.strip()) in evaluated for a, b, _ in t.train), t.name
        assert {y for *_, y in t.train} == {0, 1}


def test_valid_cut_is_seeded_and_disjoint(kexue_data):
    one = load_match_tasks(("afqmc",), valid_size=50, seed=1, eval_limit=50)[0]
    again = load_match_tasks(("afqmc",), valid_size=50, seed=1, eval_limit=50)[0]
    other = load_match_tasks(("afqmc",), valid_size=50, seed=2, eval_limit=50)[0]
    assert one.valid == again.valid and one.valid != other.valid
    assert not {pair_key(a, b) for a, b, _ in one.valid} & {pair_key(a, b) for a, b, _ in one.train}


def test_parse_tasks_and_bad_labels(tmp_path):
    assert parse_tasks(" stsb_zh , afqmc ") == ("stsb_zh", "afqmc")
    for text in ("", "afqmc,lcqmc", "afqmc,afqmc"):
        with pytest.raises(ConfigError, match="--tasks"):
            parse_tasks(text)
    from kexue.data.records import SentencePair
    with pytest.raises(DataFormatError, match="0 or 1"):
        MATCH_TASKS["afqmc"].binarise(SentencePair("a", "b", 2, line=7), "afqmc train")
    with pytest.raises(DataFormatError, match="0..5"):
        MATCH_TASKS["stsb_zh"].binarise(SentencePair("a", "b", 6, line=3), "stsb_zh train")


def test_binary_scores_hand_example():
    # pred 1 1 0 0 1 / gold 1 0 1 0 1: TP 2, FP 1, FN 1 -> F1 = 4/6; 3 of 5 correct
    scores = binary_scores([1, 1, 0, 0, 1], [1, 0, 1, 0, 1])
    assert scores["f1"] == pytest.approx(100 * 4 / 6) and scores["accuracy"] == pytest.approx(60.0)
    assert binary_scores([0, 0], [0, 0]) == {"accuracy": 100.0, "f1": 0.0}
