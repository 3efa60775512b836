"""Automatic threshold search of spec §2 (https://kexue.fm/archives/8860)."""

from __future__ import annotations

import numpy as np
import pytest

from kexue.errors import ConfigError
from kexue.metrics.threshold import binary_metrics, find_best_threshold


def _brute(scores, labels):
    """Accuracy and F1 of every achievable split, computed directly; cut k = number of scores <= t."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels)
    cuts = [-np.inf, *np.unique(s)]
    rows = []
    for t in cuts:
        pred = s > t
        tp, fp = int((pred & (y == 1)).sum()), int((pred & (y == 0)).sum())
        fn = int((~pred & (y == 1)).sum())
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        rows.append((int((s <= t).sum()), float((pred == (y == 1)).mean()), f1))
    return rows


def test_spec_example():
    scores, labels = [0.1, 0.2, 0.3, 0.6, 0.7, 0.9], [0, 0, 0, 1, 1, 1]
    result = find_best_threshold(scores, labels)
    assert result.accuracy == 1.0 and result.f1 == 1.0
    assert 0.3 < result.threshold < 0.6


def test_ties_are_cut_only_between_distinct_scores():
    result = find_best_threshold([0.5, 0.5, 0.5, 0.9], [1, 0, 0, 1])
    assert result.threshold == pytest.approx(0.7)
    assert result.accuracy == 0.75 and result.f1 == pytest.approx(2 / 3)


def test_lowest_threshold_wins_ties_in_the_metric():
    result = find_best_threshold([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1])    # 3/4 at 0.15 and at 0.35
    assert result.threshold == pytest.approx(0.15) and result.accuracy == 0.75


def test_extreme_thresholds():
    below = find_best_threshold([0.2, 0.4], [1, 1])
    assert below.threshold < 0.2 and below.accuracy == 1.0 and below.f1 == 1.0
    above = find_best_threshold([0.2, 0.4], [0, 0])
    assert above.threshold > 0.4 and above.accuracy == 1.0 and above.f1 == 0.0
    huge = find_best_threshold([1e20, 2e20], [1, 1])
    assert huge.threshold < 1e20 and huge.accuracy == 1.0


def test_adjacent_floats_never_round_onto_the_higher_score():
    a = 0.5
    b = np.nextafter(a, 1.0)
    result = find_best_threshold([a, b], [0, 1])
    assert result.accuracy == 1.0 and a <= result.threshold < b


@pytest.mark.parametrize("metric", ["accuracy", "f1"])
def test_brute_force_on_1000_random_cases(metric):
    rng = np.random.default_rng(0)
    column = 1 if metric == "accuracy" else 2
    for _ in range(1000):
        n = int(rng.integers(1, 30))
        scores = np.round(rng.uniform(-1, 1, n), int(rng.integers(1, 3)))   # rounding makes ties
        labels = rng.integers(0, 2, n)
        result = find_best_threshold(scores, labels, metric=metric)
        rows = _brute(scores, labels)
        best = max(r[column] for r in rows)
        assert abs((result.accuracy, result.f1)[column - 1] - best) < 1e-12
        assert binary_metrics(scores, labels, result.threshold) == (result.accuracy, result.f1)
        achieved_cut = int((scores <= result.threshold).sum())
        assert achieved_cut == min(r[0] for r in rows if abs(r[column] - best) < 1e-12)


def test_powell_never_beats_the_sort_sweep():
    rng = np.random.default_rng(1)
    for _ in range(20):
        scores = rng.uniform(-0.99, 0.99, 40)
        labels = (scores + rng.normal(0, 0.5, 40) > 0.2).astype(int)
        exact = find_best_threshold(scores, labels)
        powell = find_best_threshold(scores, labels, method="powell")
        assert -1 < powell.threshold < 1
        assert powell.accuracy <= exact.accuracy + 1e-12


def test_monotone_transform_keeps_the_metric():
    rng = np.random.default_rng(2)
    scores = rng.uniform(-1, 1, 200)
    labels = (scores + rng.normal(0, 0.4, 200) > 0).astype(int)
    base = find_best_threshold(scores, labels)
    for transformed in (np.exp(3 * scores), scores ** 3, 10 * scores - 4):
        other = find_best_threshold(transformed, labels)
        assert (other.accuracy, other.f1) == pytest.approx((base.accuracy, base.f1))


def test_binary_metrics_by_hand():
    acc, f1 = binary_metrics([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0], threshold=0.5)
    assert acc == 0.5 and f1 == pytest.approx(0.5)              # TP 1, FP 1, FN 1


def test_errors():
    with pytest.raises(ConfigError, match="0/1"):
        find_best_threshold([0.1, 0.2], [0, 2])
    with pytest.raises(ConfigError, match="metric"):
        find_best_threshold([0.1], [1], metric="auc")
    with pytest.raises(ConfigError, match="method"):
        find_best_threshold([0.1], [1], method="bisect")
    with pytest.raises(ValueError, match="finite"):
        find_best_threshold([0.1, float("nan")], [0, 1])
    with pytest.raises(ValueError, match="length"):
        find_best_threshold([0.1, 0.2], [0])
