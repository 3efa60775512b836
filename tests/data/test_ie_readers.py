"""Information-extraction readers: real files (counts, offsets) and typed errors on malformed input."""

from __future__ import annotations

from pathlib import Path

import pytest

from kexue.data.readers.event import TRIGGER_ROLE, read_duee, read_event_schema
from kexue.data.readers.ner import read_cluener, read_conll_bio, read_msra_ner
from kexue.data.readers.relation import read_relation_data, read_relation_schema
from kexue.errors import DataFormatError


def test_conll2003_and_people_daily(kexue_data: Path) -> None:
    dev = read_conll_bio(kexue_data / "conll2003" / "bio" / "valid.txt")
    assert len(dev) == 3250 and sum(len(ex.entities) for ex in dev) == 5942  # SOURCE.md counts
    first = dev[0]
    assert first.entities[0].text == "LEICESTERSHIRE" and first.line == 1
    assert all(ex.text[e.start:e.end] == e.text for ex in dev for e in ex.entities)
    pd = read_conll_bio(kexue_data / "people_daily_ner" / "example.dev", sep="")
    assert len(pd) == 2318
    counts = {t: sum(e.type == t for ex in pd for e in ex.entities) for t in ("LOC", "ORG", "PER")}
    assert counts == {"LOC": 1951, "ORG": 984, "PER": 884}  # B- tag counts in SOURCE.md
    assert all(len(ex.text) == len(ex.tokens) for ex in pd)


def test_msra_and_cluener(kexue_data: Path) -> None:
    msra = read_msra_ner(kexue_data / "msra_ner" / "val.sentences.txt", kexue_data / "msra_ner" / "val.tags.txt")
    assert len(msra) == 3000 and msra[0].entities[0].text == "江苏"
    dev = read_cluener(kexue_data / "cluener2020" / "dev.json")
    assert len(dev) == 1343
    assert dev[0].entities[0].text == "彭小军" and (dev[0].entities[0].start, dev[0].entities[0].end) == (0, 3)
    assert len(read_cluener(kexue_data / "cluener2020" / "test.json", require_labels=False)) == 1345
    with pytest.raises(DataFormatError, match="test.json:1: missing 'label'"):
        read_cluener(kexue_data / "cluener2020" / "test.json")


def test_relation_and_event_data(kexue_data: Path) -> None:
    schema = read_relation_schema(kexue_data / "duie2.0_subset" / "duie_schema.json")
    assert "配音" in schema.predicates and "配音_inWork" in schema.predicates
    duie = read_relation_data(kexue_data / "duie2.0_subset" / "train_data_5000.json", schema)
    assert len(duie) == 5000
    t = duie[0].triples[0]
    assert (t.subject, t.predicate, t.object) == ("邪少兵王", "作者", "冰火未央")
    assert duie[0].text[t.subject_start:t.subject_end] == "邪少兵王"
    cm_schema = read_relation_schema(kexue_data / "cmeie_subset" / "53_schemas.json")
    assert len(read_relation_data(kexue_data / "cmeie_subset" / "CMeIE_dev.json", cm_schema)) == 108
    ev_schema = read_event_schema(kexue_data / "duee1.0" / "event_schema.json")
    assert len(ev_schema.roles) == 65 and ev_schema.labels()[0][1] == TRIGGER_ROLE
    dev = read_duee(kexue_data / "duee1.0" / "dev.json", ev_schema)
    assert len(dev) == 1498
    ev = dev[0].events[0]
    assert (ev.event_type, ev.trigger.text, ev.trigger.start) == ("组织关系-裁员", "裁员", 15)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("body, line, reason", [
    ("EU B-ORG\nrejects\n", 2, "columns"),
    ("EU B-ORG\nrejects X-Y\n", 2, "BIO tag"),
    ("EU O\nrejects I-ORG\n", 2, "does not continue"),
])
def test_conll_errors(tmp_path: Path, body: str, line: int, reason: str) -> None:
    path = _write(tmp_path, "bad.txt", body)
    with pytest.raises(DataFormatError, match=reason) as err:
        read_conll_bio(path)
    assert err.value.line == line and err.value.path == str(path)


def test_msra_errors(tmp_path: Path) -> None:
    sents = _write(tmp_path, "s.txt", "北 京\n上 海\n")
    tags = _write(tmp_path, "t.txt", "B-LOC I-LOC\nB-LOC\n")
    with pytest.raises(DataFormatError, match="1 tags for 2 tokens") as err:
        read_msra_ner(sents, tags)
    assert err.value.line == 2


@pytest.mark.parametrize("body, reason", [
    ('{"text": "abc", "label": {"x": {"ab": [[0, 1]]}}}\n{"text": "abc"', "invalid JSON"),
    ('{"text": "abc", "label": {"x": {"ab": [[0, 1]]}}}\n{"text": "abc", "label": {"x": {"ab": [[1, 2]]}}}',
     "gives 'bc'"),
    ('{"text": "abc", "label": {"x": {"ab": [[0, 1]]}}}\n{"text": "abc", "label": {"x": {"ab": [0]}}}',
     "is not"),
])
def test_cluener_errors(tmp_path: Path, body: str, reason: str) -> None:
    with pytest.raises(DataFormatError, match=reason) as err:
        read_cluener(_write(tmp_path, "bad.json", body))
    assert err.value.line == 2


def test_relation_errors(tmp_path: Path) -> None:
    good = '{"text": "甲是乙的父亲", "spo_list": [{"subject": "乙", "predicate": "父亲", "object": {"@value": "甲"}}]}'
    missing = '{"text": "甲是乙的父亲", "spo_list": [{"subject": "丙", "predicate": "父亲", "object": {"@value": "甲"}}]}'
    with pytest.raises(DataFormatError, match="subject '丙' not found") as err:
        read_relation_data(_write(tmp_path, "r.json", good + "\n" + missing + "\n"))
    assert err.value.line == 2
    schema = read_relation_schema(_write(tmp_path, "s.json", '{"predicate": "母亲", "object_type": "人物"}\n'))
    with pytest.raises(DataFormatError, match="not in the schema"):
        read_relation_data(_write(tmp_path, "r2.json", good + "\n"), schema)
    with pytest.raises(DataFormatError, match="predicate"):
        read_relation_schema(_write(tmp_path, "s2.json", '[{"object_type": "x"}]'))


def test_event_errors(tmp_path: Path) -> None:
    schema = read_event_schema(_write(tmp_path, "schema.json",
                                      '{"event_type": "win", "role_list": [{"role": "winner"}]}\n'))
    ok = '{"id": "1", "text": "A beat B", "event_list": [{"event_type": "win", "trigger": "beat", ' \
         '"trigger_start_index": 2, "arguments": [{"role": "winner", "argument": "A", "argument_start_index": 0}]}]}'
    assert read_duee(_write(tmp_path, "ok.json", ok + "\n"), schema)[0].events[0].arguments[0].text == "A"
    bad_offset = ok.replace('"argument_start_index": 0', '"argument_start_index": 1')
    with pytest.raises(DataFormatError, match="does not match") as err:
        read_duee(_write(tmp_path, "bad.json", ok + "\n" + bad_offset + "\n"), schema)
    assert err.value.line == 2
    with pytest.raises(DataFormatError, match="not a role"):
        read_duee(_write(tmp_path, "bad2.json", ok.replace('"role": "winner"', '"role": "loser"')), schema)
    with pytest.raises(DataFormatError, match="reserved"):
        read_event_schema(_write(tmp_path, "s2.json", '{"event_type": "x", "role_list": [{"role": "trigger"}]}'))
