"""Every reader names file:line for invalid UTF-8, and the BIO readers' strict / lenient (conlleval) rule."""

from __future__ import annotations

import json

import pytest

from kexue.data.readers.classification import read_classification
from kexue.data.readers.event import read_duee, read_event_schema
from kexue.data.readers.ner import read_cluener, read_conll_bio, read_msra_ner
from kexue.data.readers.pairs import read_pairs
from kexue.data.readers.relation import read_relation_data, read_relation_schema
from kexue.data.readers.text_lines import iter_lines, read_text
from kexue.errors import ConfigError, DataFormatError

BAD = b"\xff\xfe"  # never valid UTF-8


def _json(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n"


CLUENER = _json({"text": "浙商银行", "label": {"company": {"浙商银行": [[0, 3]]}}})
DUIE = _json({"text": "周杰伦演唱了稻香", "spo_list": [{"subject": "稻香", "predicate": "歌手", "object": {"@value": "周杰伦"},
                                                   "subject_type": "歌曲", "object_type": {"@value": "人物"}}]})
DUEE = _json({"id": "1", "text": "公司裁员", "event_list": [{"event_type": "组织关系-裁员", "trigger": "裁员",
                                                         "trigger_start_index": 2, "arguments": []}]})

# (reader, the bytes of a valid first line, a valid middle line) — line 3 of each file gets a bad byte.
CASES = {
    "pairs-tsv": (lambda p: read_pairs(p), b"a\tb\t1\n", b"c\td\t0\n"),
    "classification": (lambda p: read_classification(p), b"fine\t0\n", b"ok\t1\n"),
    "conll-bio": (lambda p: read_conll_bio(p), b"EU B-ORG\n", b"rejects O\n"),
    "cluener": (lambda p: read_cluener(p), CLUENER, CLUENER),
    "relation": (lambda p: read_relation_data(p), DUIE, DUIE),
    "event": (lambda p: read_duee(p), DUEE, DUEE),
    "event-schema": (lambda p: read_event_schema(p), _json({"event_type": "a", "role_list": []}),
                     _json({"event_type": "b", "role_list": []})),
    "relation-schema-lines": (lambda p: read_relation_schema(p), _json({"predicate": "a"}), _json({"predicate": "b"})),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_invalid_utf8_names_file_and_line(tmp_path, name):
    read, first, middle = CASES[name]
    path = tmp_path / f"{name}.txt"
    path.write_bytes(first + middle + b"x" + BAD + middle[1:])
    with pytest.raises(DataFormatError) as err:
        read(path)
    assert err.value.line == 3 and err.value.path == str(path)
    assert str(err.value).startswith(f"{path}:3: expected UTF-8 text")
    assert "0xff" in str(err.value) and "byte 2 of the line" in str(err.value)


def test_msra_parallel_files_name_the_bad_file(tmp_path):
    sentences, tags = tmp_path / "s.txt", tmp_path / "t.txt"
    sentences.write_bytes("中 国\n".encode() + BAD + b"\n")
    tags.write_bytes(b"B-LOC I-LOC\nO\n")
    with pytest.raises(DataFormatError) as err:
        read_msra_ner(sentences, tags)
    assert (err.value.path, err.value.line) == (str(sentences), 2)


def test_whole_file_json_schema_line_from_byte_offset(tmp_path):
    path = tmp_path / "schema.json"
    path.write_bytes(b'[\n  {"predicate": "a"},\n  {"predicate": "b' + BAD + b'"}\n]\n')
    with pytest.raises(DataFormatError) as err:
        read_relation_schema(path)
    # the bad byte is the 19th byte of line 3 ('  {"predicate": "b' is 18 bytes)
    assert (err.value.line, "byte 19 of the line" in str(err.value)) == (3, True)


def test_line_helpers_strip_bom_crlf_and_refuse_folders(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("\ufeffone\r\ntwo\n\nthree".encode())
    assert list(iter_lines(path)) == [(1, "one"), (2, "two"), (3, ""), (4, "three")]
    with pytest.raises(ConfigError, match="expected a file, found a folder"):
        list(iter_lines(tmp_path))
    with pytest.raises(ConfigError, match="not found"):
        read_text(tmp_path / "missing.json")


STRAY = b"Li B-PER\nNa I-PER\nvisits O\nBei I-LOC\njing I-LOC\nand O\nWu B-LOC\nhan I-LOC\n"
#               line 4: I-LOC after O does not continue an entity (Weibo NER has such lines)


def test_strict_bio_refuses_stray_i_tag_with_line_and_flag(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes(STRAY)
    with pytest.raises(DataFormatError) as err:
        read_conll_bio(path)
    assert err.value.line == 4 and "'I-LOC' does not continue an entity" in str(err.value)
    assert "--lenient-bio" in str(err.value)


def test_lenient_bio_reads_stray_i_tag_as_new_entity(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes(STRAY + b"\nA I-PER\nB I-LOC\nC I-LOC\nD B-LOC\nE I-PER\n")
    first, second = read_conll_bio(path, lenient_bio=True)
    # conlleval: 'Bei I-LOC' opens a LOC chunk that 'jing I-LOC' continues.
    assert [(e.type, e.text) for e in first.entities] == [("PER", "Li Na"), ("LOC", "Bei jing"), ("LOC", "Wu han")]
    # I-PER opens PER; I-LOC after I-PER opens LOC, continued by I-LOC; B-LOC opens LOC; I-PER after B-LOC opens PER.
    assert [(e.type, e.text) for e in second.entities] == [("PER", "A"), ("LOC", "B C"), ("LOC", "D"), ("PER", "E")]
    assert first.tags[3] == "I-LOC"  # the file's tags are kept as written


def test_lenient_bio_in_msra_files(tmp_path):
    sentences, tags = tmp_path / "s.txt", tmp_path / "t.txt"
    sentences.write_text("北 京 大 学\n", encoding="utf-8")
    tags.write_text("O I-ORG I-ORG O\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="--lenient-bio"):
        read_msra_ner(sentences, tags)
    (example,) = read_msra_ner(sentences, tags, lenient_bio=True)
    assert [(e.type, e.start, e.end, e.text) for e in example.entities] == [("ORG", 1, 3, "京大")]
