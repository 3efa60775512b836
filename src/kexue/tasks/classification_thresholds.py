"""``kexue train classify --class-thresholds`` / ``predict classify --class-thresholds``: decision thresholds
searched on dev with the best checkpoint, frozen, and applied to test (CoSENT(二), https://kexue.fm/archives/8860).

Two decisions are reported: the per-class weights of :func:`kexue.metrics.class_thresholds.search_class_thresholds`
(``argmax_c p_c·t_c``) and, for two classes, the threshold on ``P(y = 1)`` of
:func:`kexue.metrics.threshold.find_best_threshold` (exact sweep; the reference's protocol for its "Interact"
cross-encoder). Both are written to ``class_thresholds.json`` next to the saved model, where ``predict classify
--class-thresholds`` reads the per-class weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kexue.errors import ConfigError
from kexue.metrics.class_thresholds import apply_class_thresholds, search_class_thresholds
from kexue.metrics.threshold import binary_metrics, find_best_threshold

__all__ = ["THRESHOLDS_FILE", "threshold_report", "load_class_thresholds"]

THRESHOLDS_FILE = "class_thresholds.json"


def threshold_report(dev_probs: torch.Tensor, dev_labels: list[int], test_probs: torch.Tensor | None,
                     test_labels: list[int] | None, model_dir: str | Path) -> dict[str, dict[str, float]]:
    """Search on dev, apply the frozen thresholds to test, write ``model_dir/class_thresholds.json``.

    Args:
        dev_probs / test_probs: ``[N, C]`` softmax probabilities (test may be ``None``).
        dev_labels / test_labels: class ids.
        model_dir: the saved model folder (``best/``).

    Returns: ``{"dev": {...}, "test": {...}}`` with ``accuracy_class_thresholds`` (x100) and, for ``C = 2``,
    ``accuracy_p1_threshold`` (x100) and ``p1_threshold``.
    """
    dev_p = dev_probs.double().numpy()
    found = search_class_thresholds(dev_p, np.asarray(dev_labels))
    saved: dict[str, Any] = {"thresholds": found.thresholds.tolist(), "theta": found.theta.tolist(),
                             "searched_on": "dev", "dev_accuracy": found.accuracy,
                             "dev_argmax_accuracy": found.argmax_accuracy}
    report = {"dev": {"accuracy_class_thresholds": 100 * found.accuracy}}
    binary = dev_p.shape[1] == 2
    if binary:
        best = find_best_threshold(dev_p[:, 1], np.asarray(dev_labels))
        saved["p1_threshold"] = best.threshold
        report["dev"].update(accuracy_p1_threshold=100 * best.accuracy, p1_threshold=best.threshold)
    if test_probs is not None and test_labels is not None:
        test_p, test_y = test_probs.double().numpy(), np.asarray(test_labels)
        pred = apply_class_thresholds(test_p, found.thresholds)
        report["test"] = {"accuracy_class_thresholds": 100 * float((pred == test_y).mean())}
        if binary:
            accuracy, _f1 = binary_metrics(test_p[:, 1], test_y, saved["p1_threshold"])
            report["test"].update(accuracy_p1_threshold=100 * accuracy, p1_threshold=saved["p1_threshold"])
    (Path(model_dir) / THRESHOLDS_FILE).write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    return report


def load_class_thresholds(model_dir: str | Path) -> np.ndarray:
    """The per-class weights ``[C]`` saved by :func:`threshold_report` in ``model_dir``.

    Raises: ConfigError naming ``--class-thresholds`` when the folder has none.
    """
    path = Path(model_dir) / THRESHOLDS_FILE
    if not path.is_file():
        raise ConfigError(f"--class-thresholds: no {THRESHOLDS_FILE} in {model_dir} (train with "
                          f"--class-thresholds to search them on dev)")
    return np.asarray(json.loads(path.read_text(encoding="utf-8"))["thresholds"], dtype=np.float64)
