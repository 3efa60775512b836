"""The Sohu 2021 fragments: both layouts read with the counts of their SOURCE.md, criteria A/B, format detection, and
file:line errors."""

from __future__ import annotations

import json

import pytest

from kexue.data.readers.pairs import detect_pair_format, read_pairs
from kexue.data.readers.sohu import read_sohu, sohu_layout
from kexue.errors import ConfigError, DataFormatError


def test_graded_files_match_source_counts(kexue_data):
    # SOURCE.md: dd-test 500 (0: 207, 3: 96, 5: 197), dc-test 500 (0: 158, 3: 103, 5: 239)
    for name, counts in (("dd-test.jsonl", (207, 96, 197)), ("dc-test.jsonl", (158, 103, 239))):
        sohu = read_sohu(kexue_data / "sohu2021_subset" / "text2vec" / name)
        assert sohu.layout == "graded" and sohu.criteria == ("A", "B")
        assert tuple(sum(p.label == g for p in sohu.pairs) for g in (0, 3, 5)) == counts
        assert sum(sohu.labels("A")) == counts[1] + counts[2] and sum(sohu.labels("B")) == counts[2]


def test_contest_layout_sample_file(kexue_data):
    path = kexue_data / "sohu2021_subset" / "biendata_baseline" / "samples.txt"
    # SOURCE.md: 973 rows, labelA 1: 352
    assert detect_pair_format(path) == "sohu" and sohu_layout(path) == "labelA"
    sohu = read_sohu(path)
    assert len(sohu.pairs) == 973 and sum(sohu.labels("A")) == 352
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert (sohu.pairs[0].text_a, sohu.pairs[0].text_b) == (first["source"], first["target"])
    assert read_pairs(path) == sohu.pairs
    with pytest.raises(ConfigError, match="criterion 'B'"):
        sohu.labels("B")


def test_bad_records_name_file_and_line(tmp_path):
    bad_grade = tmp_path / "g.jsonl"
    bad_grade.write_text('{"sentence1": "a", "sentence2": "b", "label": 5}\n'
                         '{"sentence1": "c", "sentence2": "d", "label": 4}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"g.jsonl:2.*0, 3, 5"):
        read_sohu(bad_grade)
    bad_label = tmp_path / "c.txt"
    bad_label.write_text('{"source": "a", "target": "b", "labelB": "1"}\n'
                         '{"source": "a", "target": "b", "labelB": "2"}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"c.txt:2"):
        read_sohu(bad_label)
    missing = tmp_path / "m.txt"
    missing.write_text('{"source": "a", "target": "b", "labelA": "1"}\n{"source": "a", "labelA": "0"}\n',
                       encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"m.txt:2.*'target'"):
        read_pairs(missing)
    other = tmp_path / "o.jsonl"
    other.write_text('{"q": "a"}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match="Sohu 2021 record"):
        read_sohu(other)
