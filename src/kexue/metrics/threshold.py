"""Automatic threshold search for binary decisions on similarity scores.

Source: "CoSENT(二):特征式匹配与交互式匹配有多大差距?", 2022-01-12, https://kexue.fm/archives/8860
(spec §2). To report accuracy for a cosine scorer, the threshold is chosen on the dev split and applied
unchanged to test. A pair is predicted positive iff ``score > threshold``.

Two methods:

* ``"sort"`` (default, spec §2 [design]): sort the scores and evaluate every distinct cut: one threshold
  below the minimum, the midpoint between each two consecutive distinct scores, one above the maximum.
  Exact (the global optimum) in O(N log N); ties between equal scores are handled by cutting only between
  distinct values; among equally good thresholds the lowest wins.
* ``"powell"``: the reference code's search, maximizing the metric over ``t = tanh(theta)`` with
  ``scipy.optimize.minimize(x0=1, method='Powell')``. Kept for faithfulness; it can stall on the
  piecewise-constant plateaus and never beats ``"sort"``. Only meaningful for scores in (-1, 1).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize

from kexue.errors import ConfigError

METRICS = ("accuracy", "f1")
METHODS = ("sort", "powell")


class ThresholdResult(NamedTuple):
    """The chosen threshold and the metrics it achieves (fractions in [0, 1])."""

    threshold: float
    accuracy: float
    f1: float


def _check(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if s.shape != y.shape or s.size == 0:
        raise ValueError(f"expected scores and labels of one non-zero length, got {s.size} and {y.size}")
    if not np.isfinite(s).all():
        raise ValueError("scores: expected finite numbers, found NaN or inf")
    if not np.isin(y, (0, 1)).all():
        found = np.unique(y)[:10].tolist()
        raise ConfigError(f"binary threshold metrics: labels must be 0/1, found values {found}; "
                          f"use graded evaluation (binary=False) for scored data")
    return s, y.astype(np.int64)


def binary_metrics(scores: ArrayLike, labels: ArrayLike, threshold: float) -> tuple[float, float]:
    """Accuracy and F1 (positive class 1) of predicting ``score > threshold``.

    Args:
        scores: ``[N]`` similarity scores.
        labels: ``[N]`` 0/1 gold labels.
        threshold: the decision threshold.

    Returns:
        ``(accuracy, f1)`` as fractions in [0, 1]; F1 is 0 when there is no true positive.

    Raises:
        ConfigError: labels are not 0/1.  ValueError: lengths differ, empty input or non-finite scores.
    """
    s, y = _check(scores, labels)
    pred = s > threshold
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    fn = int((~pred & (y == 1)).sum())
    accuracy = float((pred == (y == 1)).mean())
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return accuracy, f1


def _sweep(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds, accuracies and F1s of every distinct cut (ascending thresholds)."""
    order = np.argsort(s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    uniq, starts, counts = np.unique(s_sorted, return_index=True, return_counts=True)
    pos_le = np.concatenate([[0], np.cumsum(np.add.reduceat(y_sorted, starts))])
    all_le = np.concatenate([[0], np.cumsum(counts)])
    n, n_pos = len(s), int(y.sum())
    neg_le = all_le - pos_le
    tp = n_pos - pos_le
    fp = (n - n_pos) - neg_le
    accuracy = (tp + neg_le) / n
    denom = 2 * tp + fp + pos_le
    f1 = np.divide(2 * tp, denom, out=np.zeros(len(tp)), where=denom > 0)
    mids = uniq[:-1] + (uniq[1:] - uniq[:-1]) / 2
    mids = np.where(mids < uniq[1:], mids, uniq[:-1])   # never round up onto the next score
    below = uniq[0] - max(1.0, abs(uniq[0]))
    above = uniq[-1] + max(1.0, abs(uniq[-1]))
    thresholds = np.concatenate([[below], mids, [above]])
    return thresholds, accuracy, f1


def find_best_threshold(scores: ArrayLike, labels: ArrayLike, metric: str = "accuracy",
                        method: str = "sort") -> ThresholdResult:
    """The threshold that maximizes ``metric`` for predicting ``score > threshold`` (spec §2).

    Args:
        scores: ``[N]`` similarity scores (cosines, probabilities ...).
        labels: ``[N]`` 0/1 gold labels.
        metric: ``"accuracy"`` (default) or ``"f1"``: the quantity maximized.
        method: ``"sort"`` (exact sweep, default) or ``"powell"`` (the reference's optimizer).

    Returns:
        :class:`ThresholdResult` ``(threshold, accuracy, f1)``, both metrics at the chosen threshold.

    Raises:
        ConfigError: unknown ``metric``/``method`` or labels that are not 0/1.
        ValueError: lengths differ, empty input, or non-finite scores.
    """
    if metric not in METRICS:
        raise ConfigError(f"metric: expected one of {', '.join(METRICS)}, got {metric!r}")
    if method not in METHODS:
        raise ConfigError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    s, y = _check(scores, labels)
    if method == "sort":
        thresholds, accuracy, f1 = _sweep(s, y)
        best = int(np.argmax(accuracy if metric == "accuracy" else f1))
        return ThresholdResult(float(thresholds[best]), float(accuracy[best]), float(f1[best]))
    index = 0 if metric == "accuracy" else 1

    def objective(theta: np.ndarray) -> float:
        return -binary_metrics(s, y, float(np.tanh(theta[0])))[index]

    result = minimize(objective, x0=np.array([1.0]), method="Powell")
    threshold = float(np.tanh(result.x[0]))
    return ThresholdResult(threshold, *binary_metrics(s, y, threshold))
