"""STS evaluation: Spearman x100, Pearson x100 and, for binary data, accuracy/F1 at the searched threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kexue.data.registry import load_pairs
from kexue.errors import ConfigError
from kexue.metrics.sts import evaluate_pairs, pearson, spearman


def test_spearman_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(100.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-100.0)
    # ranks differ by [0, 1, 1, 0]: rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(80.0)
    # monotone transform of the scores leaves it unchanged
    rng = np.random.default_rng(0)
    s, y = rng.normal(size=50), rng.normal(size=50)
    assert spearman(np.exp(s), y) == pytest.approx(spearman(s, y))


def test_spearman_with_tied_labels_uses_average_ranks():
    # labels [0, 0, 1, 1] -> ranks [1.5, 1.5, 3.5, 3.5]; scores ranks [1, 2, 3, 4]
    # Pearson of the ranks: x - 2.5 = [-1.5, -.5, .5, 1.5], y - 2.5 = [-1, -1, 1, 1]
    # r = (1.5 + .5 + .5 + 1.5) / sqrt(5 * 4) = 4 / sqrt(20)
    assert spearman([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1]) == pytest.approx(100 * 4 / math.sqrt(20))


def test_pearson_by_hand():
    # x - 2 = [-1, 0, 1], y - 7/3 = [-4/3, -1/3, 5/3]: r = 3 / sqrt(2 * 42/9)
    assert pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(100 * 3 / math.sqrt(2 * 42 / 9))


def test_constant_inputs_give_nan():
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(pearson([1, 2, 3], [0, 0, 0]))


def test_evaluate_graded():
    result = evaluate_pairs([0.1, 0.5, 0.3, 0.9], [0.0, 3.2, 1.0, 5.0], binary=False)
    assert set(result) == {"spearman", "pearson", "n"}
    assert result["spearman"] == pytest.approx(100.0) and result["n"] == 4


def test_evaluate_binary_searches_threshold_and_reports_percent():
    scores, labels = [0.1, 0.2, 0.3, 0.6, 0.7, 0.9], [0, 0, 0, 1, 1, 0]
    result = evaluate_pairs(scores, labels, binary=True)
    assert set(result) == {"spearman", "pearson", "n", "accuracy", "f1", "threshold"}
    assert result["accuracy"] == pytest.approx(100 * 5 / 6)          # cut between 0.3 and 0.6
    assert 0.3 < result["threshold"] < 0.6
    assert result["f1"] == pytest.approx(100 * 0.8)                    # TP 2, FP 1, FN 0


def test_evaluate_binary_with_frozen_dev_threshold():
    result = evaluate_pairs([0.1, 0.2, 0.3, 0.6], [0, 1, 1, 1], binary=True, threshold=0.25)
    assert result["threshold"] == 0.25
    assert result["accuracy"] == pytest.approx(75.0)                   # 0.2 falls below the frozen cut


def test_evaluate_errors():
    with pytest.raises(ConfigError, match="0/1"):
        evaluate_pairs([0.1, 0.2, 0.3], [0, 3, 5], binary=True)
    with pytest.raises(ValueError, match="length"):
        evaluate_pairs([0.1, 0.2], [1], binary=False)
    with pytest.raises(ValueError, match="finite"):
        spearman([0.1, float("inf")], [0, 1])


def _char_jaccard(a: str, b: str) -> float:
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb)


def test_dev_threshold_protocol_on_real_lcqmc_slice(kexue_data):
    dev = load_pairs("lcqmc", "dev", kexue_data)[:1000]
    test = load_pairs("lcqmc", "test", kexue_data)[:1000]
    dev_scores = [_char_jaccard(p.text_a, p.text_b) for p in dev]
    test_scores = [_char_jaccard(p.text_a, p.text_b) for p in test]
    on_dev = evaluate_pairs(dev_scores, [p.label for p in dev], binary=True)
    frozen = evaluate_pairs(test_scores, [p.label for p in test], binary=True, threshold=on_dev["threshold"])
    searched = evaluate_pairs(test_scores, [p.label for p in test], binary=True)
    assert frozen["threshold"] == on_dev["threshold"]
    assert frozen["accuracy"] <= searched["accuracy"]      # the test-searched cut is optimal on test
    assert frozen["spearman"] == searched["spearman"] > 0  # overlap correlates with paraphrase labels
