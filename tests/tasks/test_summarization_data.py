"""SPACES data units: clause splitting, oracle alignment (spec arch §12 property 3), copy tags (property 2)."""

import itertools
import os
import random
from pathlib import Path

import pytest

from kexue.errors import DataFormatError
from kexue.tasks.summarization_data import (copy_tags, lcs_pairs, load_sfzy, oracle_alignment, oracle_extract,
                                            rouge_weighted, split_clauses)

DATA = Path(os.environ.get("KEXUE_DATA", "../shared/data")) / "cail2020_sfzy_sample"


def test_copy_tags_spec_example():
    a, b, c, d, x = range(5)
    source_tags, target_tags = copy_tags([a, b, c, d], [b, c, x, d])
    assert target_tags == [1, 2, 0, 1]
    assert source_tags == [0, 1, 2, 1]


def _brute_lcs(a, b):
    best = 0
    for n in range(min(len(a), len(b)), 0, -1):
        for sub in itertools.combinations(a, n):
            it = iter(b)
            if all(t in it for t in sub):
                return n
    return best


def test_lcs_pairs_is_a_longest_common_subsequence():
    rng = random.Random(0)
    for _ in range(60):
        a = [rng.randrange(4) for _ in range(rng.randrange(0, 8))]
        b = [rng.randrange(4) for _ in range(rng.randrange(0, 8))]
        pairs = lcs_pairs(a, b)
        assert len(pairs) == _brute_lcs(a, b)
        assert all(a[i] == b[j] for i, j in pairs)
        assert all(i1 < i2 and j1 < j2 for (i1, j1), (i2, j2) in zip(pairs, pairs[1:]))
        src, tgt = copy_tags(a, b)
        assert sum(t > 0 for t in src) == sum(t > 0 for t in tgt) == len(pairs)
        assert src.count(2) == tgt.count(2)  # a run continues in both sequences at once


def test_split_clauses_keeps_delimiters():
    assert split_clauses("甲，乙。丙；丁：戊\n己") == ["甲，", "乙。", "丙；", "丁：", "戊\n", "己"]
    assert split_clauses("") == []
    assert "".join(split_clauses("原告诉称，被告未还款。")) == "原告诉称，被告未还款。"


def test_rouge_weighted_hand_values():
    score = rouge_weighted()
    assert score("ab", "ab") == pytest.approx(1.0)
    assert score("xy", "ab") == pytest.approx(0.0)
    # candidate "ab", reference "abcd": R1 F = 2*1*0.5/1.5 = 2/3; R2: 1 of 1 vs 1 of 3 -> F = 0.5; RL = 2/3
    assert score("ab", "abcd") == pytest.approx(0.2 * 2 / 3 + 0.4 * 0.5 + 0.4 * 2 / 3)


def test_oracle_alignment_matches_exact_copies_and_is_monotone():
    doc = ["原告张三，", "被告李四，", "借款一万元。", "约定利息。", "到期未还。", "请求判决还款。"]
    summary = ["借款一万元。", "到期未还。", "请求判决还款。"]
    assert oracle_alignment(doc, summary) == [(0, 2), (1, 4), (2, 5)]
    assert oracle_extract(doc, summary) == [2, 4, 5]


def test_oracle_alignment_monotone_on_random_scores():
    rng = random.Random(1)
    for _ in range(40):
        doc = [str(k) * rng.randrange(1, 5) for k in range(rng.randrange(1, 12))]
        summ = [str(k) * rng.randrange(1, 5) for k in range(rng.randrange(1, 8))]
        table = {(d, s): rng.random() for d in doc for s in summ}
        pairs = oracle_alignment(doc, summ, lambda d, s: table[d, s])
        assert [i for i, _ in pairs] == list(range(len(summ)))  # strictly increasing, every clause aligned
        js = [j for _, j in pairs]
        assert js == sorted(js) and all(0 <= j < len(doc) for j in js)


def test_oracle_alignment_deep_input_needs_no_recursion_limit():
    doc = [f"第{k}句。" for k in range(1500)]
    pairs = oracle_alignment(doc, doc[:1000], lambda d, s: float(d == s))
    assert pairs == [(k, k) for k in range(1000)]


def test_load_sfzy_sample_and_errors(tmp_path):
    docs = load_sfzy(DATA)
    assert len(docs) == 20
    assert all(d.summary and d.sentences and len(d.labels) == len(d.sentences) for d in docs)
    assert not any(s.endswith("\r") for d in docs for s in d.sentences)
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "1", "summary": "s", "text": [{"sentence": "a", "label": 1}]}\n{"id": 2}\n',
                   encoding="utf-8")
    with pytest.raises(DataFormatError, match="bad.json:2"):
        load_sfzy(bad)
