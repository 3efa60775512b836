"""Oracle round trips on real data (GPLinker relations: duie2.0_subset, cmeie_subset).

Gold -> label tensors -> library decoders -> gold again.

Character-level tokenisation (one token per character, ``[CLS]`` first and ``[SEP]`` last), as for Chinese BERT.
"""

from __future__ import annotations

from pathlib import Path

from _oracle import ScoreBuffer, special_ends

from kexue.data.readers.relation import read_relation_data, read_relation_schema
from kexue.extraction import (
    char_offsets,
    decode_relations,
    encode_relations,
    example_quintuples,
    quintuples_to_triples,
)


def _relation_oracle(path: Path, schema_path: Path) -> tuple[list, list]:
    """Returns ``(failures, examples)``; a failure is ``(line, spurious, missing)``."""
    examples = read_relation_data(path)
    schema = read_relation_schema(schema_path)
    index = schema.index()
    width = max(len(ex.text) for ex in examples) + 2
    buffers = [ScoreBuffer(2, width), ScoreBuffer(len(index), width), ScoreBuffer(len(index), width)]
    failures = []
    for ex in examples:
        off = char_offsets(ex.text)
        length = len(off)
        quints, dropped = example_quintuples(ex, off, index)
        assert not dropped
        labels = encode_relations([quints], len(index), length)
        scores = [buf.scores(lab, length) for buf, lab in zip(buffers, labels, strict=True)]
        decoded = decode_relations(*scores, threshold=0, special_tokens_mask=special_ends(length))[0]
        pred = quintuples_to_triples(decoded, ex.text, off, schema.predicates)
        gold = {(t.subject, t.predicate, t.object) for t in ex.triples}
        if pred != gold:
            failures.append((ex.line, pred - gold, gold - pred))
    return failures, examples


def _crossed(ex, spurious: set) -> bool:
    """True if every spurious triple's head-head and tail-tail cells are gold cells of other triples (the
    GPLinker factorisation then scores it exactly like a gold triple)."""
    heads = {(t.predicate, t.subject_start, t.object_start) for t in ex.triples}
    tails = {(t.predicate, t.subject_end, t.object_end) for t in ex.triples}
    for subj, pred, obj in spurious:
        s, o = ex.text.find(subj), ex.text.find(obj)
        if (pred, s, o) not in heads or (pred, s + len(subj), o + len(obj)) not in tails:
            return False
    return True


def test_duie_subset_relation_oracle(kexue_data: Path) -> None:
    failures, examples = _relation_oracle(kexue_data / "duie2.0_subset" / "train_data_5000.json",
                                          kexue_data / "duie2.0_subset" / "duie_schema.json")
    assert len(examples) == 5000
    # Two texts cannot round-trip: nested subjects sharing a head token and nested objects sharing a tail token
    # under one predicate, so the head-head and tail-tail cells of the crossed pairs are gold as well:
    # 1684 "超人前传第九季" / "超人前传第九季（Smallville Season 9）" x "2009年9月25日" / "美国东部时间2009年9月25日";
    # 3158 "祯子" / "祯子内亲王" x "藤原妍子" / "中宫藤原妍子". No gold triple is ever lost.
    assert [f[0] for f in failures] == [1684, 3158]
    by_line = {ex.line: ex for ex in examples}
    for line, spurious, missing in failures:
        assert not missing and _crossed(by_line[line], spurious)


def test_cmeie_subset_relation_oracle(kexue_data: Path) -> None:
    for name in ("CMeIE_dev.json", "CMeIE_train.json"):
        failures, examples = _relation_oracle(kexue_data / "cmeie_subset" / name,
                                              kexue_data / "cmeie_subset" / "53_schemas.json")
        assert len(examples) in (108, 500) and failures == []


