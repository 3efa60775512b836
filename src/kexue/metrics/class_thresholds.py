"""Per-class multiplicative thresholds for multi-class argmax decisions.

Source: "CoSENT(二):特征式匹配与交互式匹配有多大差距?", 2022-01-12, https://kexue.fm/archives/8860 (spec §2).
The binary rule ``score > t`` generalises to ``C`` classes as ``argmax_c p_c·t_c`` with one positive weight per
class, ``t_c = (tanh θ_c + 1)/2 ∈ (0, 1)``. The θ are chosen on the dev split to maximise accuracy and then applied
unchanged to test. As in the reference code, the search is ``scipy.optimize.minimize(method="Powell")`` started from
``θ = 0`` (all weights 1/2, i.e. plain argmax) with ``xtol = ftol = 1e-10`` and ``maxiter = 1e5``; accuracy is
piecewise constant in θ, so Powell finds a local plateau, not the global optimum. The result is never worse on the
searched data than plain argmax: if Powell ends below its starting accuracy, ``θ = 0`` is returned.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize

__all__ = ["ClassThresholds", "search_class_thresholds", "apply_class_thresholds", "class_weights",
           "thresholded_accuracy"]

#: Powell's options, those of the reference code
POWELL_OPTIONS = {"xtol": 1e-10, "ftol": 1e-10, "maxiter": 100_000}


class ClassThresholds(NamedTuple):
    """Searched per-class weights ``t [C]`` (in (0, 1)), their ``theta [C]``, and the accuracies (fractions) on the
    searched data with the weights (``accuracy``) and with plain argmax (``argmax_accuracy``)."""

    thresholds: np.ndarray
    theta: np.ndarray
    accuracy: float
    argmax_accuracy: float


def _check(probs: ArrayLike, labels: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2:
        raise ValueError(f"probs: expected a [N, C] array with N >= 1 and C >= 2, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("probs: expected finite numbers, found NaN or inf")
    if labels is None:
        return p, None
    y = np.asarray(labels).reshape(-1)
    if y.shape[0] != p.shape[0]:
        raise ValueError(f"labels: expected {p.shape[0]} labels (one per row of probs), got {y.shape[0]}")
    if not np.issubdtype(y.dtype, np.integer) or (y < 0).any() or (y >= p.shape[1]).any():
        raise ValueError(f"labels: expected integer class ids in [0, {p.shape[1]}), got {np.unique(y)[:10].tolist()}")
    return p, y.astype(np.int64)


def class_weights(theta: ArrayLike) -> np.ndarray:
    """``t_c = (tanh θ_c + 1)/2`` for ``theta [C]`` (float64, in (0, 1); 1/2 at θ = 0)."""
    return (np.tanh(np.asarray(theta, dtype=np.float64)) + 1.0) / 2.0


def apply_class_thresholds(probs: ArrayLike, thresholds: ArrayLike) -> np.ndarray:
    """Predicted classes ``argmax_c probs[:, c]·thresholds[c]`` (int64 ``[N]``; ties go to the lowest class).

    Args:
        probs: ``[N, C]`` class probabilities (any non-negative scores).
        thresholds: ``[C]`` positive per-class weights ``t`` (from :func:`search_class_thresholds`).

    Raises: ValueError for shapes that do not fit, non-finite values, or a weight that is not > 0.
    """
    p, _ = _check(probs)
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if t.shape[0] != p.shape[1]:
        raise ValueError(f"thresholds: expected {p.shape[1]} weights (one per class), got {t.shape[0]}")
    if not (np.isfinite(t).all() and (t > 0).all()):
        raise ValueError(f"thresholds: expected finite weights > 0, got {t.tolist()}")
    return (p * t[None, :]).argmax(axis=1)


def thresholded_accuracy(probs: ArrayLike, labels: ArrayLike, thresholds: ArrayLike) -> float:
    """Accuracy (fraction) of :func:`apply_class_thresholds` against ``labels [N]``."""
    p, y = _check(probs, labels)
    return float((apply_class_thresholds(p, thresholds) == y).mean())


def search_class_thresholds(probs: ArrayLike, labels: ArrayLike) -> ClassThresholds:
    """Per-class weights maximising the accuracy of ``argmax_c p_c·t_c`` on ``(probs, labels)`` (spec §2).

    Powell over ``θ ∈ R^C`` from ``θ = 0`` with :data:`POWELL_OPTIONS` (tolerance 1e-10 on θ and on accuracy);
    derivative-free, meant for at most ~100 classes. Only the ratios of the weights matter.

    Args:
        probs: ``[N, C]`` dev-split probabilities (or any scores whose argmax is the prediction).
        labels: ``[N]`` integer class ids in ``[0, C)``.

    Returns:
        :class:`ClassThresholds` (``thresholds`` to give to :func:`apply_class_thresholds` on test).

    Raises: ValueError for bad shapes, non-finite probabilities or labels outside ``[0, C)``.
    """
    p, y = _check(probs, labels)

    def objective(theta: np.ndarray) -> float:
        return -float(((p * class_weights(theta)[None, :]).argmax(axis=1) == y).mean())

    start = np.zeros(p.shape[1])
    base = -objective(start)
    result = minimize(objective, start, method="Powell", options=dict(POWELL_OPTIONS))
    theta = np.asarray(result.x, dtype=np.float64)
    found = -objective(theta)
    if found < base:
        theta, found = start, base
    return ClassThresholds(class_weights(theta), theta, found, base)
