"""Sentence-pair readers and the dataset registry on the real files and on small malformed files."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from kexue.data.readers.pairs import (
    detect_pair_format,
    pair_labels,
    read_id_pair_tsv,
    read_pair_jsonl,
    read_pair_tsv,
    read_pairs,
    read_stsb_tsv,
)
from kexue.data.records import SentencePair
from kexue.data.registry import DATASETS, load_pairs, resolve_dataset
from kexue.errors import ConfigError, DataFormatError

# (folder, file, split column or None, rows, positives or None, labelled, format) from each SOURCE.md
REAL_FILES = [
    ("stsb_en", "stsbenchmark.tsv", "train", 5749, None, True, "stsb"),
    ("stsb_en", "stsbenchmark.tsv", "dev", 1500, None, True, "stsb"),
    ("stsb_en", "stsbenchmark.tsv", "test", 1379, None, True, "stsb"),
    ("stsb_zh", "STS-B.train.data", None, 5231, None, True, "tsv"),
    ("stsb_zh", "STS-B.valid.data", None, 1458, None, True, "tsv"),
    ("stsb_zh", "STS-B.test.data", None, 1361, None, True, "tsv"),
    ("afqmc", "train.txt", None, 34334, 10573, True, "tsv"),
    ("afqmc", "dev.txt", None, 4316, 1338, True, "tsv"),
    ("afqmc", "test.txt", None, 3861, None, False, "tsv"),
    ("atec", "ATEC.valid.data", None, 20000, 3688, True, "tsv"),
    ("atec", "ATEC.test.data", None, 20000, 3610, True, "tsv"),
    ("bq", "dev.tsv", None, 10000, 5000, True, "tsv"),
    ("bq", "test_unlabeled.tsv", None, 10000, None, False, "tsv"),
    ("lcqmc", "dev.txt", None, 8802, 4402, True, "tsv"),
    ("lcqmc", "test.txt", None, 12500, 6250, True, "tsv"),
    ("pawsx_zh", "dev_2k.tsv", None, 2000, 853, True, "id-tsv"),
    ("pawsx_zh", "test_2k.tsv", None, 2000, 894, True, "id-tsv"),
]


@pytest.mark.parametrize(("folder", "name", "split", "rows", "positives", "labelled", "fmt"), REAL_FILES,
                         ids=[f"{r[0]}/{r[1]}:{r[2]}" for r in REAL_FILES])
def test_real_files_parse_with_source_row_counts(kexue_data: Path, folder, name, split, rows, positives,
                                                 labelled, fmt):
    path = kexue_data / folder / name
    assert detect_pair_format(path) == fmt
    pairs = read_pairs(path, split)
    assert len(pairs) == rows
    assert all(isinstance(p, SentencePair) and p.text_a.strip() and p.text_b.strip() for p in pairs)
    assert all(p.has_label == labelled for p in pairs)
    if positives is not None:
        counts = Counter(p.label for p in pairs)
        assert set(counts) == {0, 1}
        assert counts[1] == positives


def test_stsb_en_scores_are_floats_in_range(kexue_data: Path):
    pairs = read_stsb_tsv(kexue_data / "stsb_en" / "stsbenchmark.tsv", "dev")
    assert all(isinstance(p.label, float) and 0.0 <= p.label <= 5.0 for p in pairs)
    assert not any("\r" in p.text_b for p in pairs)          # CRLF stripped
    assert pairs[0] == SentencePair("A man with a hard hat is dancing.", "A man wearing a hard hat is dancing.", 5.0)


def test_stsb_zh_scores_are_ints_0_to_5(kexue_data: Path):
    labels = pair_labels(read_pair_tsv(kexue_data / "stsb_zh" / "STS-B.valid.data"))
    assert set(labels) == {0, 1, 2, 3, 4, 5} and all(type(x) is int for x in labels)


def test_pawsx_keeps_ids_and_skips_header(kexue_data: Path):
    pairs = read_id_pair_tsv(kexue_data / "pawsx_zh" / "dev_2k.tsv")
    assert pairs[0].id == "4" and pairs[0].label == 1
    assert pairs[0].text_a.startswith("Four Rivers")


def test_bq_backspace_characters_are_kept_inside_sentences(kexue_data: Path):
    pairs = read_pairs(kexue_data / "bq" / "dev.tsv")
    assert sum("\x08" in p.text_a + p.text_b for p in pairs) > 0


def test_registry_resolves_every_split(kexue_data: Path):
    files = {(f, "train" if "train" in n else "test" if "test" in n else "dev"): (n, split, labelled, fmt)
             for f, n, split, _, _, labelled, fmt in REAL_FILES if split is None}
    files.update({("stsb_en", split): ("stsbenchmark.tsv", split, True, "stsb") for split in ("train", "dev", "test")})
    assert set(DATASETS) == {f for f, _ in files}
    for (name, split), (file, column, labelled, fmt) in files.items():
        resolved = resolve_dataset(name, split, kexue_data)
        assert (resolved.path, resolved.split, resolved.labelled, resolved.fmt) == \
            (kexue_data / name / file, column, labelled, fmt)
    assert {(n, s) for n, info in DATASETS.items() for s in info.splits} == set(files)
    assert len(load_pairs("stsb_zh", "valid", kexue_data)) == 1458          # alias of dev
    assert resolve_dataset("lcqmc", "dev", kexue_data).label_kind == "binary"
    assert resolve_dataset("stsb_zh", "dev", kexue_data).label_kind == "graded"


def test_registry_uses_env_var(kexue_data: Path, monkeypatch):
    monkeypatch.setenv("KEXUE_DATA", str(kexue_data))
    assert resolve_dataset("stsb_en", "dev").split == "dev"
    monkeypatch.delenv("KEXUE_DATA")
    with pytest.raises(ConfigError, match="KEXUE_DATA"):
        resolve_dataset("stsb_en", "dev")


def test_registry_errors_name_known_datasets_and_env(kexue_data: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match=r"stsb_en.*KEXUE_DATA"):
        resolve_dataset("no_such_set", "dev", kexue_data)
    with pytest.raises(ConfigError, match="available: dev, test"):
        resolve_dataset("atec", "train", kexue_data)
    with pytest.raises(ConfigError, match="--split"):
        resolve_dataset("atec", "holdout", kexue_data)
    with pytest.raises(ConfigError, match="not found"):
        resolve_dataset("atec", "dev", tmp_path)                 # registered name, folder absent


def test_registry_user_paths(kexue_data: Path, tmp_path: Path):
    # a file with a split column given by path is filtered to the split
    assert len(load_pairs(kexue_data / "stsb_en" / "stsbenchmark.tsv", "test")) == 1379
    assert len(load_pairs(kexue_data / "stsb_en", "dev")) == 1500
    assert len(load_pairs(kexue_data / "pawsx_zh", "test")) == 2000
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "train.txt").write_text("a\tb\t1\nc\td\t0\n", encoding="utf-8")
    (folder / "my.valid.tsv").write_text("e\tf\t1\n", encoding="utf-8")
    assert [p.text_a for p in load_pairs(folder, "train")] == ["a", "c"]
    assert [p.text_a for p in load_pairs(folder, "dev")] == ["e"]
    with pytest.raises(ConfigError, match="'test'"):
        load_pairs(folder, "test")


def test_header_crlf_bom_and_trailing_blank_lines(tmp_path: Path):
    path = tmp_path / "x.tsv"
    path.write_bytes("\ufeffsentence1\tsentence2\tlabel\r\n你好\t您好\t1\r\n天气\t下雨\t0\r\n\r\n\n".encode())
    assert read_pairs(path) == [SentencePair("你好", "您好", 1), SentencePair("天气", "下雨", 0)]
    unlabelled = tmp_path / "test.data"
    unlabelled.write_text("a\tb\nc\td\n", encoding="utf-8")
    assert read_pairs(unlabelled) == [SentencePair("a", "b"), SentencePair("c", "d")]


def test_jsonl_reader(tmp_path: Path):
    path = tmp_path / "train.json"
    path.write_text('{"sentence1": "花呗", "sentence2": "借呗", "label": "0"}\n'
                    '{"sentence1": "a", "sentence2": "b", "label": 1}\n', encoding="utf-8")
    assert detect_pair_format(path) == "jsonl"
    assert read_pairs(path) == [SentencePair("花呗", "借呗", 0), SentencePair("a", "b", 1)]
    test = tmp_path / "test.jsonl"
    test.write_text('{"id": 7, "sentence1": "a", "sentence2": "b"}\n', encoding="utf-8")
    assert read_pair_jsonl(test) == [SentencePair("a", "b", None, "7")]


def test_explicit_format_and_split_rules(tmp_path: Path):
    path = tmp_path / "x.txt"
    path.write_text("a\tb\t1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no split column"):
        read_pairs(path, split="train")
    with pytest.raises(ConfigError, match="--format"):
        read_pairs(path, fmt="csv")
    with pytest.raises(ConfigError, match="not found"):
        read_pairs(tmp_path / "absent.txt")
    stsb = tmp_path / "sts.tsv"
    stsb.write_text("split\tscore\tsentence1\tsentence2\ntrain\t1.5\ta\tb\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="holds: train"):
        read_pairs(stsb, split="dev")


def _error(tmp_path: Path, content: bytes | str, name: str = "bad.tsv", fmt: str | None = None) -> DataFormatError:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(DataFormatError) as info:
        read_pairs(path, fmt=fmt, split="train" if fmt == "stsb" else None)
    assert info.value.path == str(path)
    return info.value


@pytest.mark.parametrize(("content", "line", "reason"), [
    ("a\tb\t1\nc\td\n", 2, "expected 3 tab-separated fields.*found 2"),          # wrong field count
    ("a\tb\t1\nc\td\t1\t9\n", 2, "found 4"),
    ("a\tb\t1\tx\ty\n", 1, "expected 2 or 3 .*found 5"),
    ("a\tb\t1\nc\td\thigh\n", 2, "label: expected a number, found 'high'"),    # non-numeric label
    ("a\tb\t1\nc\td\tnan\n", 2, "expected a finite number"),
    ("a\tb\t1\n \td\t0\n", 2, "text_a: expected a non-empty sentence"),         # empty text
    ("a\t\t1\n", 1, "text_b: expected a non-empty sentence"),
    ("a\tb\t1\n\nc\td\t0\n", 2, "blank line"),
    (b"a\tb\t1\nc\xff\td\t0\n", 2, "expected UTF-8"),
])
def test_malformed_tsv_lines(tmp_path: Path, content, line, reason):
    err = _error(tmp_path, content)
    assert err.line == line
    assert re.search(reason, err.reason)


@pytest.mark.parametrize(("content", "line", "reason"), [
    ('{"sentence1": "a", "sentence2": "b", "label": 1}\n{"sentence1": "a", "sentence2": "b", "label": 1\n',
     2, "invalid JSON"),
    ('["a", "b", 1]\n', 1, "expected a JSON object, found list"),
    ('{"sentence1": "a", "label": 1}\n', 1, "missing key 'sentence2'"),
    ('{"sentence1": "a", "sentence2": "b", "label": 1}\n{"sentence1": "a", "sentence2": "b"}\n', 2,
     "missing key 'label'"),
    ('{"sentence1": "a", "sentence2": "b"}\n{"sentence1": "a", "sentence2": "b", "label": 0}\n', 2,
     "unexpected key 'label'"),
    ('{"sentence1": "a", "sentence2": "", "label": 1}\n', 1, "sentence2: expected a non-empty sentence"),
    ('{"sentence1": 3, "sentence2": "b", "label": 1}\n', 1, "sentence1: expected a string, found int"),
    ('{"sentence1": "a", "sentence2": "b", "label": "yes"}\n', 1, "label: expected a number, found 'yes'"),
    ('{"sentence1": "a", "sentence2": "b", "label": true}\n', 1, "label: expected a number, found True"),
])
def test_malformed_jsonl_lines(tmp_path: Path, content, line, reason):
    err = _error(tmp_path, content, name="bad.jsonl")
    assert err.line == line and reason in err.reason


def test_malformed_stsb_and_id_tsv(tmp_path: Path):
    header = "split\tgenre\tscore\tsentence1\tsentence2\r\n"
    err = _error(tmp_path, header + "train\tx\t2.0\ta\tb\r\ntrain\tx\t2.0\ta\r\n", fmt="stsb")
    assert err.line == 3 and "expected 5 tab-separated fields" in err.reason and "found 4" in err.reason
    err = _error(tmp_path, header + "train\tx\tgood\ta\tb\r\n", fmt="stsb")
    assert err.line == 2 and "score: expected a number, found 'good'" in err.reason
    err = _error(tmp_path, "train\tx\t2.0\ta\tb\n", fmt="stsb")
    assert err.line == 1 and "expected a header row" in err.reason
    err = _error(tmp_path, "id\tsentence1\tsentence2\tlabel\n1\ta\tb\t1\n2\ta\tb\n", fmt="id-tsv")
    assert err.line == 3 and "found 3" in err.reason
    err = _error(tmp_path, "id\tsentence1\tsentence2\tlabel\n\ta\tb\t1\n", fmt="id-tsv")
    assert err.line == 2 and "id: expected a non-empty id" in err.reason


def test_empty_files(tmp_path: Path):
    assert "empty file" in _error(tmp_path, "\n\n").reason
    assert "after the header" in _error(tmp_path, "sentence1\tsentence2\tlabel\n").reason


def test_pair_labels_rejects_unlabelled():
    assert pair_labels([SentencePair("a", "b", 2)]) == [2]
    with pytest.raises(ConfigError, match="pair 1 has no label"):
        pair_labels([SentencePair("a", "b", 1), SentencePair("c", "d")])
