"""Labels checked against the task before any work starts, so that one typo cannot change the task.

* Classes (``train classify``): a registered dataset has a known class count; a user's data is binary (0/1) unless
  ``--num-labels K`` declares ``K`` classes. A label outside the classes is a
  :class:`~kexue.errors.DataFormatError` naming ``file:line`` — one stray ``7`` in a binary file must not build an
  8-class classifier.
* Scores (``train sts``, ``eval sts``): a registered dataset has a known range (STS-B 0..5, matching sets 0/1); a
  user's range is declared with ``--score-range LO,HI`` or inferred from the training split — all 0/1 means binary,
  otherwise ``[min, max]``, which is refused as ambiguous when its lowest or highest value rests on a single line (a
  lone outlier would otherwise rescale every target of ``--loss mse``). Dev and test are checked against the same
  range.

Records are anything with ``.label`` and ``.line`` (:class:`kexue.data.records.SentencePair`,
:class:`kexue.data.readers.classification.TextExample`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kexue.errors import ConfigError, DataFormatError

__all__ = ["check_class_labels", "ScoreRange", "parse_score_range", "infer_score_range", "check_scores"]

LabelledFile = tuple[str | Path, Sequence[Any]]
"""``(path, records)``: the file the records were read from, for ``file:line`` messages."""


def _counts(records: Sequence[Any]) -> str:
    counts = Counter(r.label for r in records if r.label is not None)
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))


def check_class_labels(files: Sequence[LabelledFile], num_labels: int | None = None,
                       registered: int | None = None, dataset: str | None = None) -> int:
    """The class count of a classification run, after checking every label against it.

    Args:
        files: ``(path, records)`` of train first, then dev/test; unlabelled records (``label None``) are skipped.
        num_labels: ``--num-labels`` (``None``: not declared).
        registered: the class count of a registered dataset (``None``: user data).
        dataset: the registered name, for messages.

    Returns:
        ``num_labels`` if declared, else ``registered``, else 2.

    Raises:
        ConfigError: ``num_labels < 2``, or a declared count that contradicts the registered one.
        DataFormatError(path, line, ...): the first label (in ``files`` order) outside ``0 .. K-1``; for undeclared
            user data the message lists the labels found and how to declare them with ``--num-labels``.
    """
    if num_labels is not None:
        if num_labels < 2:
            raise ConfigError(f"--num-labels: expected an integer >= 2, got {num_labels}")
        if registered is not None and num_labels != registered:
            raise ConfigError(f"--num-labels {num_labels}: dataset {dataset!r} has {registered} classes")
    k = num_labels or registered or 2
    for path, records in files:
        for record in records:
            if record.label is None or 0 <= record.label < k:
                continue
            if num_labels is not None:
                why = f"outside the {k} classes declared by --num-labels (0..{k - 1})"
            elif registered is not None:
                why = f"dataset {dataset!r} has {k} classes (0..{k - 1})"
            else:
                why = (f"the data is read as binary (0/1) unless --num-labels declares its classes (labels in this "
                       f"file: {_counts(records)}); pass --num-labels {int(record.label) + 1} if it really has "
                       f"{int(record.label) + 1} classes, else fix the line")
            raise DataFormatError(path, record.line, f"label {record.label}: {why}")
    return k


@dataclass(frozen=True)
class ScoreRange:
    """The range gold scores must lie in.

    Attributes:
        low / high: inclusive bounds (``low < high``); ``--loss mse`` maps ``low`` to cosine 0 and ``high`` to 1.
        binary: scores must be exactly 0 or 1 (matching datasets).
        source: ``"declared"`` (``--score-range``), ``"registered"`` or ``"inferred"`` (from the training split).
    """

    low: float
    high: float
    binary: bool = False
    source: str = "declared"

    def describe(self) -> str:
        """``0/1 (registered)`` or ``[0, 5] (inferred from train)`` style text."""
        span = "0/1" if self.binary else f"[{self.low:g}, {self.high:g}]"
        return f"{span} ({'inferred from train' if self.source == 'inferred' else self.source})"


def parse_score_range(text: str | None) -> ScoreRange | None:
    """``"LO,HI"`` (``--score-range``) as a declared :class:`ScoreRange`; ``None`` stays ``None``.

    Raises:
        ConfigError: not two finite numbers ``LO < HI`` separated by a comma.
    """
    if text is None:
        return None
    parts = text.split(",")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--score-range: expected LO,HI (e.g. 0,5), got {text!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
        raise ConfigError(f"--score-range: expected finite LO < HI, got {text!r}")
    return ScoreRange(low, high)


def infer_score_range(path: str | Path, train: Sequence[Any]) -> ScoreRange:
    """The score range of a user's training split (see the module docstring for the rule).

    Raises:
        ConfigError: no labelled pair, or a range that is ambiguous because its lowest or highest score occurs on a
            single line (the message names that ``file:line`` and ``--score-range``).
    """
    labels = [r for r in train if r.label is not None]
    if not labels:
        raise ConfigError(f"{path}: no labelled pairs to infer the score range from; pass --score-range LO,HI")
    values = Counter(float(r.label) for r in labels)
    if set(values) <= {0.0, 1.0}:
        return ScoreRange(0.0, 1.0, binary=True, source="inferred")
    low, high = min(values), max(values)
    for end, value in (("highest", high), ("lowest", low)):
        if values[value] == 1:
            line = next(r.line for r in labels if float(r.label) == value)
            raise ConfigError(f"{path}:{line}: the {end} score {value:g} occurs only on this line, so the score range "
                              f"inferred from train ([{low:g}, {high:g}]) would rest on one pair (a typo would "
                              f"rescale every target); declare the range with --score-range LO,HI (e.g. 0,5)")
    return ScoreRange(low, high, source="inferred")


def check_scores(path: str | Path, records: Sequence[Any], score_range: ScoreRange) -> None:
    """Every labelled record's score lies in ``score_range`` (exactly 0 or 1 when it is binary).

    Raises:
        DataFormatError(path, line, ...): the first score outside, with the range and where it came from.
    """
    for record in records:
        if record.label is None:
            continue
        value = float(record.label)
        bad = value not in (0.0, 1.0) if score_range.binary else not score_range.low <= value <= score_range.high
        if bad:
            hint = "" if score_range.source == "declared" else "; declare another range with --score-range LO,HI"
            raise DataFormatError(path, record.line, f"score {record.label}: outside the score range "
                                                     f"{score_range.describe()}{hint}")
