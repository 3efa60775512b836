"""Label checks (classes, score ranges) and the dev/test cut of a single file, at library level."""

from __future__ import annotations

import pytest

from kexue.data.label_checks import (ScoreRange, check_class_labels, check_scores, infer_score_range,
                                     parse_score_range)
from kexue.data.records import SentencePair
from kexue.data.registry import is_single_file, registered_score_range
from kexue.data.splits import check_split_options, cut_dev_test
from kexue.errors import ConfigError, DataFormatError


def _pairs(labels, first_line: int = 1) -> list[SentencePair]:
    return [SentencePair("a", "b", v, line=first_line + i) for i, v in enumerate(labels)]


def test_record_line_is_not_part_of_equality():
    assert SentencePair("a", "b", 1, line=3) == SentencePair("a", "b", 1, line=9)


def test_classes_binary_unless_declared():
    train = _pairs([0, 1, 1, 0, 7, 1])
    with pytest.raises(DataFormatError) as err:
        check_class_labels([("t.tsv", train)])
    assert (err.value.path, err.value.line) == ("t.tsv", 5) and "--num-labels 8" in err.value.reason
    assert check_class_labels([("t.tsv", train)], num_labels=8) == 8
    assert check_class_labels([("t.tsv", _pairs([0, 1, None]))]) == 2  # unlabelled rows are skipped
    with pytest.raises(DataFormatError) as err:  # dev checked after train, against the same classes
        check_class_labels([("t.tsv", _pairs([0, 1, 2])), ("d.tsv", _pairs([2, 3], first_line=2))], num_labels=3)
    assert (err.value.path, err.value.line) == ("d.tsv", 3)
    with pytest.raises(DataFormatError, match="dataset 'sst2' has 2 classes"):
        check_class_labels([("t.tsv", _pairs([0, 2]))], registered=2, dataset="sst2")
    with pytest.raises(ConfigError, match="--num-labels 3: dataset 'sst2' has 2 classes"):
        check_class_labels([("t.tsv", _pairs([0, 1]))], num_labels=3, registered=2, dataset="sst2")
    with pytest.raises(ConfigError, match="--num-labels: expected an integer >= 2"):
        check_class_labels([("t.tsv", _pairs([0]))], num_labels=1)


def test_score_range_parse_infer_and_check():
    assert parse_score_range("0,5") == ScoreRange(0.0, 5.0)
    for bad in ("5,0", "0", "a,b", "0,inf", "1,1"):
        with pytest.raises(ConfigError, match="--score-range"):
            parse_score_range(bad)
    assert infer_score_range("t", _pairs([0, 1, 1, 0])) == ScoreRange(0.0, 1.0, binary=True, source="inferred")
    assert infer_score_range("t", _pairs([0.0, 2.5, 5.0, 0.0, 5.0])) == ScoreRange(0.0, 5.0, source="inferred")
    with pytest.raises(ConfigError) as err:  # the top of the range rests on line 4 alone
        infer_score_range("t.tsv", _pairs([0, 5, 0, 50, 5, 3]))
    assert str(err.value).startswith("t.tsv:4: the highest score 50 occurs only on this line")
    with pytest.raises(ConfigError, match="t.tsv:2: the lowest score -3"):
        infer_score_range("t.tsv", _pairs([1, -3, 1, 5, 5]))
    check_scores("d", _pairs([0, 5, 2.5, None]), ScoreRange(0.0, 5.0))
    with pytest.raises(DataFormatError) as err:
        check_scores("d.tsv", _pairs([0, 5.5]), ScoreRange(0.0, 5.0))
    assert (err.value.line, "outside the score range [0, 5] (declared)" in err.value.reason) == (2, True)
    with pytest.raises(DataFormatError, match="0/1 \\(registered\\)"):  # binary: 0.5 is in [0, 1] but not 0/1
        check_scores("d.tsv", _pairs([1, 0.5]), ScoreRange(0.0, 1.0, binary=True, source="registered"))


def test_registered_ranges(kexue_data):
    assert registered_score_range("stsb_en") == ScoreRange(0.0, 5.0, source="registered")
    assert registered_score_range("lcqmc") == ScoreRange(0.0, 1.0, binary=True, source="registered")
    assert registered_score_range("some/path") is None
    assert not is_single_file("stsb_en")
    assert not is_single_file(kexue_data / "stsb_en" / "stsbenchmark.tsv")  # it has a split column
    assert is_single_file(kexue_data / "lcqmc" / "dev.txt")


def test_cut_dev_test_is_a_seeded_partition():
    items = list(range(50))
    train, dev, test = cut_dev_test(items, 0.1, seed=7)
    assert (len(train), len(dev), len(test)) == (40, 5, 5)
    assert sorted(train + dev + test) == items and not set(dev) & set(test)
    assert cut_dev_test(items, 0.1, seed=7) == (train, dev, test)
    assert cut_dev_test(items, 0.1, seed=8) != (train, dev, test)
    assert [len(s) for s in cut_dev_test(list(range(5)), 0.1, seed=0)] == [1, 2, 2]  # at least 2 each
    with pytest.raises(ConfigError, match="--split-ratio 0.1: 4 example"):
        cut_dev_test(list(range(4)), 0.1, seed=0)


def test_split_options(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.tsv").write_text("a\tb\t1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="--test ./x.tsv is the --data file itself"):
        check_split_options("x.tsv", True, "d.tsv", "./x.tsv", None)
    with pytest.raises(ConfigError, match="single file.*--dev FILE.*--split-ratio"):
        check_split_options("x.tsv", True, None, None, None)
    check_split_options("x.tsv", True, "d.tsv", None, None)
    check_split_options("x.tsv", True, None, None, 0.1)
    check_split_options("folder", False, None, None, None)
    with pytest.raises(ConfigError, match="cannot be combined with --dev/--test"):
        check_split_options("x.tsv", True, None, "t.tsv", 0.1)
    with pytest.raises(ConfigError, match="already has its own dev/test splits"):
        check_split_options("stsb_en", False, None, None, 0.1)
    for ratio in (0.0, 0.5, -0.1):
        with pytest.raises(ConfigError, match="--split-ratio: expected a fraction"):
            check_split_options("x.tsv", True, None, None, ratio)
