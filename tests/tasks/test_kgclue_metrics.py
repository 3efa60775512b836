"""KgCLUE metrics (spec §9 property 5), LCS against brute force, and the reader's S/M split."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.data.readers.seq2seq import split_mention
from kexue.errors import ConfigError
from kexue.metrics.kgclue import kgclue_metrics, kgclue_scores, lcs_length


def brute_lcs(a: str, b: str) -> int:
    subs = {"".join(c) for r in range(len(a) + 1) for c in itertools.combinations(a, r)}
    return max(len(s) for s in subs if _is_subsequence(s, b))


def _is_subsequence(s: str, b: str) -> bool:
    it = iter(b)
    return all(ch in it for ch in s)


def test_identical_disjoint_and_hand_values():
    assert kgclue_scores("《固体物理》", "《固体物理》") == (1.0, 1.0)
    assert kgclue_scores("龍晶", "韩玉玲") == (0.0, 0.0)
    # LCS("主要成就", "主讲课程") = 1 ("主"): F1 = 2*1/(4+4)
    assert kgclue_scores("主要成就", "主讲课程") == (0.0, 0.25)
    m = kgclue_metrics(["a", "xy", "abc"], ["a", "zz", "abd"])
    assert m["em"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx((1 + 0 + 2 * 2 / 6) / 3)
    assert m["score"] == pytest.approx((m["em"] + m["f1"]) / 2)
    assert m["count"] == 3


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abc明天", max_size=6), st.text(alphabet="abc明天", max_size=6))
def test_em_le_f1_and_lcs_brute_force(a, b):
    assert lcs_length(a, b) == brute_lcs(a, b)
    em, f1 = kgclue_scores(a, b)
    assert 0.0 <= em <= f1 <= 1.0
    assert (em == 1.0) == (a == b)
    assert kgclue_scores(b, a) == (em, f1)


def test_metric_errors():
    with pytest.raises(ConfigError):
        kgclue_metrics(["a"], ["a", "b"])
    with pytest.raises(ConfigError):
        kgclue_metrics([], [])


def test_split_mention():
    assert split_mention("守望星光（韩玉玲、刘东考演唱歌曲）") == ("守望星光", "韩玉玲、刘东考演唱歌曲")
    assert split_mention("龙晶") == ("龙晶", "")
    assert split_mention("甲（乙（丙））") == ("甲", "乙（丙）")
    assert split_mention("（乙）") == ("（乙）", "")
