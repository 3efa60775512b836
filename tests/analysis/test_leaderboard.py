"""Leaderboard means (https://kexue.fm/archives/8783): the spec's verifiable properties (training §9)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import gmean

from kexue.analysis.leaderboard import (TaskSetMismatch, leaderboard_means, parse_score, power_means,
                                        read_leaderboard)
from kexue.errors import ConfigError, DataFormatError

FEWCLUE = Path(__file__).parent / "data" / "fewclue_readme.md"


def test_hand_computed_means():
    am, gm, hm = power_means([1.0, 4.0])
    assert (am, gm, hm) == (2.5, pytest.approx(2.0, abs=1e-15), pytest.approx(1.6, abs=1e-15))
    res = leaderboard_means({"a": {"x": 1.0, "y": 4.0}, "b": {"x": 2.0, "y": 2.0}})
    a, b = res.rows
    assert (a.rank_am, b.rank_am) == (1, 2)   # 2.5 > 2
    assert (a.rank_gm, b.rank_gm) == (1, 1)   # 2 == 2: a tie shares rank 1
    assert (a.rank_hm, b.rank_hm) == (2, 1)   # 1.6 < 2
    assert a.tasks == ("x", "y") and a.dropped == ()


def _bug_table():
    # models beat humans on most tasks and trail slightly on one; an extra low-scoring task exists only in
    # the model rows (the paper's 11th GLUE task)
    human = {"t1": 90.0, "t2": 88.0, "t3": 95.0, "t4": 80.0}
    models = {
        "model_a": {"t1": 93.0, "t2": 91.0, "t3": 94.0, "t4": 85.0, "extra": 10.0},
        "model_b": {"t1": 92.0, "t2": 90.0, "t3": 93.5, "t4": 84.0, "extra": 12.0},
        "model_c": {"t1": 91.0, "t2": 89.5, "t3": 93.0, "t4": 82.0, "extra": 8.0},
    }
    return {"human": human, **models}


def test_bug_replay_strict_raises_and_intersection_ranks_agree():
    table = _bug_table()
    with pytest.raises(TaskSetMismatch, match="--intersection") as info:
        leaderboard_means(table)
    assert info.value.model == "model_a" and info.value.extra == ("extra",)
    res = leaderboard_means(table, strict=False)
    assert res.ranking("am") == res.ranking("gm") == res.ranking("hm")
    assert res.ranking("am")[-1] == "human"
    for row in res.rows:
        assert row.tasks == ("t1", "t2", "t3", "t4")
    assert dict((r.model, r.dropped) for r in res.rows)["model_b"] == ("extra",)
    tau = res.rank_agreement()
    assert all(v == pytest.approx(1.0) for v in tau.values())
    # the paper's way (each row over its own tasks, scipy's gmean) puts humans first under GM
    naive = {m: gmean(list(row.values())) for m, row in table.items()}
    assert max(naive, key=naive.get) == "human"


def test_explicit_tasks_choose_the_columns():
    res = leaderboard_means(_bug_table(), tasks=["t1", "t2"])
    assert res.rows[0].tasks == ("t1", "t2")
    assert res.rows[1].dropped == ("t3", "t4", "extra")
    with pytest.raises(ConfigError, match="--tasks"):
        leaderboard_means(_bug_table(), tasks=["t1", "nope"])


def test_am_ge_gm_ge_hm_and_equality_iff_equal():
    rng = np.random.default_rng(0)
    for _ in range(200):
        s = rng.uniform(0.01, 100.0, size=rng.integers(1, 12))
        am, gm, hm = power_means(s)
        assert am >= gm - 1e-12 * am and gm >= hm - 1e-12 * gm
        if len(s) > 1:
            assert am - hm > 0
    am, gm, hm = power_means([7.5] * 6)
    assert am == pytest.approx(gm, abs=1e-12) and gm == pytest.approx(hm, abs=1e-12)


def test_rankings_invariant_to_uniform_rescaling():
    rng = np.random.default_rng(1)
    table = {f"m{i}": {f"t{j}": float(rng.uniform(0.2, 0.99)) for j in range(6)} for i in range(8)}
    percent = {m: {t: 100.0 * v for t, v in row.items()} for m, row in table.items()}
    a, b = leaderboard_means(table), leaderboard_means(percent)
    for mean in ("am", "gm", "hm"):
        assert a.ranking(mean) == b.ranking(mean)


def test_kendall_tau_matches_pair_counting():
    rng = np.random.default_rng(2)
    table = {f"m{i}": {f"t{j}": float(rng.uniform(1, 100)) for j in range(5)} for i in range(9)}
    res = leaderboard_means(table)
    am = [r.am for r in res.rows]
    hm = [r.hm for r in res.rows]
    pairs = list(itertools.combinations(range(9), 2))
    concordant = sum(np.sign(am[i] - am[j]) == np.sign(hm[i] - hm[j]) for i, j in pairs)
    assert res.rank_agreement()[("am", "hm")] == pytest.approx((2 * concordant - len(pairs)) / len(pairs))


def test_nonpositive_policies_are_explicit():
    table = {"a": {"x": 0.5, "y": -0.1}, "b": {"x": 0.3, "y": 0.2}}
    with pytest.raises(ConfigError, match="--nonpositive"):
        leaderboard_means(table)
    shifted = leaderboard_means(table, nonpositive="shift")
    assert shifted.constant == pytest.approx(1.1)
    assert shifted.rows[0].am == pytest.approx(0.2 + 1.1)
    assert shifted.ranking("am") == leaderboard_means(table, nonpositive="shift", shift=5.0).ranking("am")
    clipped = leaderboard_means(table, nonpositive="clip", floor=0.01)
    assert clipped.rows[0].gm == pytest.approx(math.sqrt(0.5 * 0.01))
    with pytest.raises(ConfigError, match="--shift"):
        leaderboard_means(table, nonpositive="shift", shift=0.05)


def test_decimal_comma_and_point_parsing():
    assert parse_score("85,3", decimal=",") == parse_score("85.3", decimal=",") == parse_score("85.3") == 85.3
    assert parse_score(" 85.3% ") == 85.3
    for bad, decimal in (("85,3", "."), ("1.234,5", ","), ("1,234,5", ","), ("abc", "."), ("1.2.3", ".")):
        with pytest.raises(ValueError):
            parse_score(bad, decimal)


def test_csv_errors_name_file_and_line(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("model;a;b\nm1;85,3;70.1\nm2;80,0;7,,1\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"t\.csv:3: column 'b'"):
        read_leaderboard(f, decimal=",")
    f.write_text("model;a;b\nm1;85,3;70.1\nm2;80,0;-\n", encoding="utf-8")
    table = read_leaderboard(f, decimal=",")
    assert table.scores == {"m1": {"a": 85.3, "b": 70.1}, "m2": {"a": 80.0}}
    assert table.lines == {"m1": 2, "m2": 3}
    f.write_text("model,a\nm1,1,2\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"t\.csv:2: expected 2 cells"):
        read_leaderboard(f)


def test_fewclue_readme_table():
    table = read_leaderboard(FEWCLUE, drop=["score"])
    assert len(table.tasks) == 9 and "Human" in table.scores
    # the published Human score (82.49) is the plain mean of its nine tasks: (90+88+90.3+68+71+98+66+84+87.1)/9
    res = leaderboard_means(table.scores)
    human = next(r for r in res.rows if r.model == "Human")
    assert human.am == pytest.approx(742.4 / 9, abs=1e-12)
    assert res.ranking("am")[0] == res.ranking("gm")[0] == res.ranking("hm")[0] == "Human"
