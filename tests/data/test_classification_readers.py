"""Classification readers: every real file parses with its SOURCE.md row counts; bad lines name file and line."""

from __future__ import annotations

import pytest

from kexue.data.readers.classification import (TextExample, load_classification, read_classification,
                                               read_text_label_tsv, read_text_pair_label_tsv)
from kexue.errors import ConfigError, DataFormatError

# (dataset, split) -> (rows, positives) from each folder's SOURCE.md; None = unlabelled
SOURCE_COUNTS = {
    ("sst2", "train"): (60614, 33828), ("sst2", "dev"): (6735, 3741), ("sst2", "test"): (872, 444),
    ("sentiment_zh", "train"): (16883, 8588), ("sentiment_zh", "dev"): (2111, 1037),
    ("sentiment_zh", "test"): (2111, 1052),
    ("afqmc", "train"): (34334, 10573), ("afqmc", "dev"): (4316, 1338), ("afqmc", "test"): (3861, None),
}


@pytest.mark.parametrize("name,split", list(SOURCE_COUNTS))
def test_every_registered_file_parses_with_source_md_counts(kexue_data, name, split):
    rows, positives = SOURCE_COUNTS[(name, split)]
    examples = load_classification(name, split, root=kexue_data)
    assert len(examples) == rows
    assert all(isinstance(e, TextExample) and e.text.strip() for e in examples)
    assert all((e.text_pair is not None) == (name == "afqmc") for e in examples)
    if positives is None:
        assert all(e.label is None for e in examples)
    else:
        assert {e.label for e in examples} == {0, 1}
        assert sum(e.label for e in examples) == positives


def test_first_rows_match_the_files(kexue_data):
    sst2 = load_classification("sst2", "test", root=kexue_data)
    assert sst2[0] == TextExample("it 's a charming and often affecting journey . ", None, 1)
    afqmc = load_classification("afqmc", "train", root=kexue_data)
    assert afqmc[0] == TextExample("蚂蚁借呗等额还款可以换成先息后本吗", "借呗有先息到期还本吗", 0)


def _write(tmp_path, text: str, name: str = "f.tsv"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.mark.parametrize("text,line,match", [
    ("good\t1\nbad\tx\n", 2, "label"),
    ("good\t1\nbad\t-1\n", 2, "class id"),
    ("good\t1\nno label here\n", 2, "field"),
    ("good\t1\n\nbad\t0\n", 2, "blank"),
    ("good\t1\n\t0\n", 2, "non-empty"),
])
def test_single_text_errors_name_file_and_line(tmp_path, text, line, match):
    path = _write(tmp_path, text)
    with pytest.raises(DataFormatError, match=match) as err:
        read_text_label_tsv(path)
    assert err.value.line == line and str(path) in str(err.value)


def test_pair_label_that_is_not_a_class_id_names_its_line(tmp_path):
    path = _write(tmp_path, "sentence1\tsentence2\tlabel\na\tb\t1\nc\td\t0.5\n")
    with pytest.raises(DataFormatError, match="class id") as err:
        read_text_pair_label_tsv(path)
    assert err.value.line == 3


def test_header_crlf_and_unlabelled_files(tmp_path):
    path = _write(tmp_path, "sentence\tlabel\r\nfine\t0\r\nok\t1\r\n")
    assert read_text_label_tsv(path) == [TextExample("fine", None, 0), TextExample("ok", None, 1)]
    assert read_classification(_write(tmp_path, "just text\nmore\n", "u.txt")) == \
        [TextExample("just text"), TextExample("more")]
    pair = read_classification(_write(tmp_path, "a\tb\t1\n", "p.txt"))
    assert pair == [TextExample("a", "b", 1)]


def test_user_folder_and_unknown_names(tmp_path):
    folder = tmp_path / "mydata"
    folder.mkdir()
    (folder / "train.tsv").write_text("x\t0\ny\t1\n", encoding="utf-8")
    (folder / "valid.tsv").write_text("z\t1\n", encoding="utf-8")
    assert load_classification(folder, "dev") == [TextExample("z", None, 1)]
    with pytest.raises(ConfigError, match="split 'test'"):
        load_classification(folder, "test")
    with pytest.raises(ConfigError, match="unknown classification dataset"):
        load_classification(str(tmp_path / "nope"), "train")
