"""Semantic-textual-similarity evaluation: rank correlation between scores and gold labels.

Source: the CN-STS protocol of "CoSENT(一)", https://kexue.fm/archives/8847 (spec §0): Spearman
correlation x100 between the predicted cosine and the label over a whole split; for binary data also
accuracy and F1 at the automatically searched threshold of "CoSENT(二)", https://kexue.fm/archives/8860
(spec §2). Correlations come from ``scipy.stats``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import pearsonr, spearmanr

from kexue.metrics.threshold import binary_metrics, find_best_threshold


def _pair(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if s.shape != y.shape or s.size < 2:
        raise ValueError(f"expected scores and labels of one length >= 2, got {s.size} and {y.size}")
    if not (np.isfinite(s).all() and np.isfinite(y).all()):
        raise ValueError("expected finite scores and labels, found NaN or inf")
    return s, y


def spearman(scores: ArrayLike, labels: ArrayLike) -> float:
    """Spearman rank correlation x100 (``scipy.stats.spearmanr``, ties get average ranks).

    Args:
        scores: ``[N]`` predicted similarities (e.g. cosines).
        labels: ``[N]`` gold labels or scores.

    Returns:
        A float in [-100, 100]; NaN when either side is constant (correlation undefined).

    Raises:
        ValueError: lengths differ, fewer than 2 values, or non-finite values.
    """
    s, y = _pair(scores, labels)
    if np.ptp(s) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(spearmanr(s, y).statistic) * 100


def pearson(scores: ArrayLike, labels: ArrayLike) -> float:
    """Pearson correlation x100 (``scipy.stats.pearsonr``); NaN when either side is constant.

    Raises:
        ValueError: as :func:`spearman`.
    """
    s, y = _pair(scores, labels)
    if np.ptp(s) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(pearsonr(s, y).statistic) * 100


def evaluate_pairs(scores: ArrayLike, labels: ArrayLike, binary: bool,
                   threshold: float | None = None) -> dict[str, float]:
    """Evaluate similarity scores of a whole split of sentence pairs.

    Args:
        scores: ``[N]`` predicted similarities (cosines).
        labels: ``[N]`` gold labels (0/1 for binary data, graded scores otherwise).
        binary: whether the labels are 0/1; adds accuracy, F1 and the threshold.
        threshold: for binary data, a threshold frozen on the dev split (spec §2 protocol: never tune on
            test); ``None`` searches the accuracy-maximizing one on these scores (use that on dev).

    Returns:
        ``{"spearman", "pearson", "n"}`` (correlations x100) and, when ``binary``, ``"accuracy"`` and ``"f1"``
        (x100, i.e. percent, like the post's tables) and ``"threshold"`` (predict positive iff
        ``score > threshold``).

    Raises:
        ConfigError: ``binary`` with labels other than 0/1. ValueError: as :func:`spearman`.
    """
    s, y = _pair(scores, labels)
    result: dict[str, float] = {"spearman": spearman(s, y), "pearson": pearson(s, y), "n": int(s.size)}
    if binary:
        if threshold is None:
            threshold, accuracy, f1 = find_best_threshold(s, y)
        else:
            accuracy, f1 = binary_metrics(s, y, threshold)
        result.update(accuracy=accuracy * 100, f1=f1 * 100, threshold=float(threshold))
    return result
