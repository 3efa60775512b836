"""SemEval STS12-16 reader: the scored-pair counts of the folder's SOURCE.md, unscored lines dropped, alignment and
score errors naming the file."""

from __future__ import annotations

import pytest

from kexue.data.readers.semeval_sts import read_semeval_all, read_semeval_subset, read_semeval_year
from kexue.errors import ConfigError, DataFormatError

COUNTS = {"STS12": 3108, "STS13": 1500, "STS14": 3750, "STS15": 3000, "STS16": 1186}


def test_counts_match_source(kexue_data):
    for year, total in COUNTS.items():
        assert len(read_semeval_all(year)) == total, year
    sts15 = read_semeval_year("STS15")
    assert len(sts15["answers-forums"]) == 375 and len(sts15["belief"]) == 375  # 2000 input lines each
    first = read_semeval_year("STS12")["MSRpar"][0]
    line = (kexue_data / "sts12_16_en" / "STS12" / "STS.input.MSRpar.txt").read_text(encoding="utf-8").split("\n")[0]
    gold = (kexue_data / "sts12_16_en" / "STS12" / "STS.gs.MSRpar.txt").read_text(encoding="utf-8").split("\n")[0]
    assert (first.text_a, first.text_b, first.label) == (*line.split("\t")[:2], float(gold))


def test_unscored_dropped_and_errors(tmp_path):
    inp, gold = tmp_path / "STS.input.x.txt", tmp_path / "STS.gs.x.txt"
    inp.write_text("a\tb\nc\td\ne\tf\n", encoding="utf-8")
    gold.write_text("4.2\n\n1\n", encoding="utf-8")
    pairs = read_semeval_subset(inp, gold)
    assert [(p.text_a, p.label) for p in pairs] == [("a", 4.2), ("e", 1.0)]
    gold.write_text("4.2\n1\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="one gold line per input line"):
        read_semeval_subset(inp, gold)
    gold.write_text("4.2\n7\n1\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"STS.gs.x.txt:2.*0..5"):
        read_semeval_subset(inp, gold)
    with pytest.raises(ConfigError, match="--sts-year"):
        read_semeval_year("STS17")
