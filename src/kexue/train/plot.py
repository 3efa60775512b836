"""PNG plot of a run: training loss and the dev metric(s) against the optimizer step (matplotlib, Agg)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_NON_METRIC = {"event", "step", "epoch"}


def plot_metrics(records: Sequence[dict[str, Any]], path: str | Path, metric: str | None = None) -> Path:
    """Draw training loss (top) and evaluation metrics (bottom) against the optimizer step and save a PNG.

    Args:
        records: events as written to ``metrics.jsonl`` (see :class:`kexue.train.logging.MetricsLog`).
        path: destination ``.png``; written atomically (temporary file + ``os.replace``).
        metric: the dev metric to draw; ``None`` = every numeric metric of the evaluation events.

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    train = [r for r in records if r.get("event") == "train" and "loss" in r]
    evals = [r for r in records if r.get("event") == "eval"]
    fig = Figure(figsize=(7, 6))
    fig.subplots_adjust(left=0.12, right=0.97, top=0.97, bottom=0.09, hspace=0.08)
    FigureCanvasAgg(fig)
    ax_loss, ax_eval = fig.subplots(2, 1, sharex=True)
    ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], color="tab:blue", lw=1.2)
    ax_loss.set_ylabel("training loss")
    ax_loss.grid(alpha=0.3)
    if metric is not None:
        names = [metric]
    else:
        names = sorted({k for r in evals for k, v in r.items()
                        if k not in _NON_METRIC and isinstance(v, (int, float)) and not isinstance(v, bool)})
    for name in names:
        pts = [(r["step"], r[name]) for r in evals if isinstance(r.get(name), (int, float))]
        if pts:
            ax_eval.plot(*zip(*pts), marker="o", ms=3, label=name)
    ax_eval.set_xlabel("optimizer step")
    ax_eval.set_ylabel("dev metric")
    ax_eval.grid(alpha=0.3)
    if ax_eval.lines:
        ax_eval.legend(loc="best", fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=100)
    os.replace(tmp, path)
    return path
