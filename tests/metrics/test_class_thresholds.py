"""Per-class thresholds (spec §2 of matching_and_prompting, https://kexue.fm/archives/8860)."""

from __future__ import annotations

import numpy as np
import pytest

from kexue.metrics.class_thresholds import (apply_class_thresholds, class_weights, search_class_thresholds,
                                            thresholded_accuracy)
from kexue.metrics.threshold import find_best_threshold


def _random_case(rng: np.random.Generator, n: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    logits = rng.normal(size=(n, c))
    labels = rng.integers(0, c, size=n)
    logits[np.arange(n), labels] += rng.normal(0.5, 1.0, size=n)   # informative but noisy
    logits[:, 0] += 0.8                                            # a biased class: thresholds can help
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, labels


def test_weights_by_hand():
    assert class_weights([0.0, np.arctanh(0.5), -np.arctanh(0.5)]) == pytest.approx([0.5, 0.75, 0.25])
    probs = np.array([[0.6, 0.4], [0.3, 0.7], [0.55, 0.45]])
    # weights (0.25, 0.75): 0.15 vs 0.30 -> 1; 0.075 vs 0.525 -> 1; 0.1375 vs 0.3375 -> 1
    assert apply_class_thresholds(probs, [0.25, 0.75]).tolist() == [1, 1, 1]
    # weights (0.5, 0.5) are plain argmax; an exact tie goes to the lowest class
    assert apply_class_thresholds(probs, [0.5, 0.5]).tolist() == [0, 1, 0]
    assert apply_class_thresholds([[0.5, 0.5]], [1.0, 1.0]).tolist() == [0]
    assert thresholded_accuracy(probs, [0, 1, 1], [0.5, 0.5]) == pytest.approx(2 / 3)


def test_spec_example_as_two_classes():
    scores = np.array([.1, .2, .3, .6, .7, .9])
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.stack([1 - scores, scores], 1)
    found = search_class_thresholds(probs, labels)
    assert found.accuracy == 1.0
    # the implied binary threshold on P(y=1): p1·t1 > (1-p1)·t0  <=>  p1 > t0 / (t0 + t1)
    t0, t1 = found.thresholds
    assert 0.3 < t0 / (t0 + t1) < 0.6


@pytest.mark.parametrize("c", [2, 3, 5])
def test_equal_theta_is_plain_argmax_and_search_never_worse(c):
    rng = np.random.default_rng(c)
    for _ in range(5):
        probs, labels = _random_case(rng, 300, c)
        plain = float((probs.argmax(1) == labels).mean())
        for value in (0.0, 0.7, -1.3):
            weights = class_weights(np.full(c, value))
            assert (apply_class_thresholds(probs, weights) == probs.argmax(1)).all()
        found = search_class_thresholds(probs, labels)
        assert found.argmax_accuracy == pytest.approx(plain)
        assert found.accuracy >= plain
        assert found.accuracy == pytest.approx(thresholded_accuracy(probs, labels, found.thresholds))
        assert ((found.thresholds > 0) & (found.thresholds < 1)).all()


def test_the_search_improves_a_biased_model():
    rng = np.random.default_rng(0)
    probs, labels = _random_case(rng, 2000, 3)
    found = search_class_thresholds(probs, labels)
    assert found.accuracy > found.argmax_accuracy + 0.01
    assert found.thresholds[0] < found.thresholds[1:].min()    # the over-predicted class is down-weighted


def test_two_classes_never_beat_the_exact_sweep_on_the_log_ratio():
    # two classes: argmax p_c t_c is the binary rule log(p1/p0) > log(t0/t1), whose exact optimum the sort sweep
    # (checked against brute force in test_threshold.py) finds; Powell can only match it
    rng = np.random.default_rng(1)
    for _ in range(20):
        probs, labels = _random_case(rng, 200, 2)
        exact = find_best_threshold(np.log(probs[:, 1] / probs[:, 0]), labels).accuracy
        assert search_class_thresholds(probs, labels).accuracy <= exact + 1e-12


def test_monotone_rescaling_keeps_the_accuracy():
    rng = np.random.default_rng(2)
    probs, labels = _random_case(rng, 400, 3)
    found = search_class_thresholds(probs, labels)
    # a positive scale of all scores, and per-class scales folded into the weights, change no decision
    assert thresholded_accuracy(probs * 7.5, labels, found.thresholds) == found.accuracy
    scale = np.array([2.0, 0.5, 3.0])
    assert thresholded_accuracy(probs * scale, labels, found.thresholds / scale) == pytest.approx(found.accuracy)


def test_frozen_dev_thresholds_on_test():
    rng = np.random.default_rng(3)
    dev, dev_y = _random_case(rng, 500, 3)
    test, test_y = _random_case(rng, 500, 3)
    frozen = search_class_thresholds(dev, dev_y).thresholds
    expected = float(((test * frozen).argmax(1) == test_y).mean())
    assert thresholded_accuracy(test, test_y, frozen) == expected


def test_errors():
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        search_class_thresholds(np.ones(3), [0, 1, 0])
    with pytest.raises(ValueError, match="class ids"):
        search_class_thresholds(np.ones((2, 2)), [0, 2])
    with pytest.raises(ValueError, match="one per row"):
        search_class_thresholds(np.ones((2, 2)), [0])
    with pytest.raises(ValueError, match="weights > 0"):
        apply_class_thresholds(np.ones((2, 2)), [0.0, 1.0])
    with pytest.raises(ValueError, match="one per class"):
        apply_class_thresholds(np.ones((2, 2)), [1.0])
    with pytest.raises(ValueError, match="finite"):
        apply_class_thresholds(np.array([[np.nan, 1.0]]), [1.0, 1.0])
