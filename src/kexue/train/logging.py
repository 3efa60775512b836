"""The run's metrics log (``metrics.jsonl``, one JSON object per event) and the tqdm progress bar."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from kexue.errors import DataFormatError, StorageError


class MetricsLog:
    """Append-only JSON-lines log of training and evaluation events.

    Each line is one object with at least ``"event"`` (``"train"`` or ``"eval"``), ``"step"`` (optimizer steps
    done) and ``"epoch"`` (fractional: epochs done, e.g. 1.5 = half-way through the second epoch). Training
    events add ``loss`` (mean over the steps since the last event), ``lr``, ``examples_per_s`` and, when the
    batches carry an attention mask, ``tokens_per_s``; evaluation events add the metrics ``evaluate`` returned.

    Args:
        path: the ``metrics.jsonl`` file; created (with its folder) if missing.
        enabled: ``False`` makes every call a no-op (non-zero ranks).
    """

    def __init__(self, path: str | Path, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        """Append one event (any JSON-serialisable dict) and flush it to disk.

        Raises:
            StorageError: naming the file, when it cannot be written (disk full, no permission).
        """
        if not self.enabled:
            return
        try:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise StorageError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def truncate_after(self, step: int) -> None:
        """Drop events logged after optimizer ``step`` (used on resume: those steps are run again).

        The file is rewritten atomically (temporary file + ``os.replace``).

        Raises:
            DataFormatError: if an existing line is not a JSON object with a ``step``.
        """
        if not self.enabled or not self.path.is_file():
            return
        kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and _step_of(self.path, line) <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, self.path)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All events of a ``metrics.jsonl`` file, in order.

    Raises:
        DataFormatError: with the line number, if a line is not a JSON object.
    """
    path = Path(path)
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(path, lineno, f"expected a JSON object, found invalid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise DataFormatError(path, lineno, f"expected a JSON object, found {type(record).__name__}")
        out.append(record)
    return out


def _step_of(path: Path, line: str) -> int:
    try:
        record = json.loads(line)
        return int(record["step"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataFormatError(path, None, f"expected JSON objects with a 'step', found {line[:80]!r}") from exc


class ProgressBar:
    """A tqdm bar over optimizer steps showing loss, learning rate and throughput.

    Args:
        total: total optimizer steps of the run.
        initial: steps already done (resume).
        enabled: ``False`` shows nothing (non-zero ranks, or ``progress_bar=False``).
    """

    def __init__(self, total: int, initial: int = 0, enabled: bool = True) -> None:
        self._bar = tqdm(total=total, initial=initial, disable=not enabled, desc="train", unit="step",
                         dynamic_ncols=True)

    def update(self, steps: int, *, loss: float, lr: float, examples_per_s: float,
               tokens_per_s: float | None = None) -> None:
        """Advance by ``steps`` and show the latest loss, learning rate and examples (tokens) per second."""
        postfix = {"loss": f"{loss:.4f}", "lr": f"{lr:.2e}", "ex/s": f"{examples_per_s:.1f}"}
        if tokens_per_s is not None:
            postfix["tok/s"] = f"{tokens_per_s:.0f}"
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(steps)

    def write(self, message: str) -> None:
        """Print a line above the bar (e.g. evaluation results)."""
        if not self._bar.disable:
            self._bar.write(message)

    def close(self) -> None:
        """Close the bar."""
        self._bar.close()
