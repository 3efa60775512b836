"""Leaderboard means: arithmetic, geometric and harmonic means of per-task scores, their rankings, and the check
the criticised paper lacked — that every row is averaged over the same tasks.

Source: "开局一段扯,数据全靠编?真被一篇"神论文"气到了", https://kexue.fm/archives/8783 (on Shavrina & Malykh,
"How not to Lie with a Benchmark: Rearranging NLP Leaderboards", arXiv 2112.01342). Su reverse-engineered the
paper's GLUE table: the Human row's GM/HM used 10 tasks, the model rows' used 11 (the 11th scoring low), which
alone made "humans still first" under GM/HM; averaged over one task set, AM, GM and HM rank the models alike. The
tables also mixed decimal commas and points.

``AM = (1/n) Σ s``, ``GM = (Π s)^{1/n}``, ``HM = n / Σ 1/s``; for positive scores AM ≥ GM ≥ HM (power means of
exponent 1, 0, −1), with equality iff all scores are equal. GM and HM are undefined for zero or negative scores
(e.g. a negative Matthews correlation), so a policy must be chosen explicitly: refuse (default), shift every
score by a constant, or clip at a floor.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, rankdata

from kexue.errors import ConfigError, DataFormatError

MEANS = ("am", "gm", "hm")
NONPOSITIVE_POLICIES = ("refuse", "shift", "clip")
MISSING_CELLS = ("", "-", "–", "—", "n/a", "na", "nan")


class TaskSetMismatch(ConfigError):
    """Strict mode: a row's task set differs from the others' (``model`` names the row, ``missing`` and
    ``extra`` the tasks it lacks and has beyond the reference set)."""

    def __init__(self, message: str, model: str, missing: Sequence[str], extra: Sequence[str]) -> None:
        super().__init__(message)
        self.model = model
        self.missing = tuple(missing)
        self.extra = tuple(extra)


@dataclass
class LeaderboardRow:
    """One model's means over the tasks it was averaged on.

    Attributes:
        model: the row name.
        am, gm, hm: arithmetic, geometric and harmonic means (after the zero/negative policy).
        rank_am, rank_gm, rank_hm: 1 = best (highest); ties share the smallest rank.
        tasks: the tasks the means used (in column order).
        dropped: tasks the row had but the means did not use (intersection mode or ``tasks=``).
    """

    model: str
    am: float
    gm: float
    hm: float
    rank_am: int = 0
    rank_gm: int = 0
    rank_hm: int = 0
    tasks: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()


@dataclass
class LeaderboardMeans:
    """The result of :func:`leaderboard_means`: ``rows`` in input order, the policy applied and its constant."""

    rows: list[LeaderboardRow]
    nonpositive: str = "refuse"
    constant: float = 0.0
    notes: list[str] = field(default_factory=list)

    def ranking(self, mean: str) -> list[str]:
        """Models from best to worst under ``mean`` (``"am"``, ``"gm"`` or ``"hm"``)."""
        if mean not in MEANS:
            raise ConfigError(f"--mean: expected one of {MEANS}, got {mean!r}")
        return [r.model for r in sorted(self.rows, key=lambda r: (getattr(r, f"rank_{mean}"), r.model))]

    def rank_agreement(self) -> dict[tuple[str, str], float]:
        """Kendall τ (``scipy.stats.kendalltau``, τ-b) between the three rankings, for each pair of means.

        Returns ``{("am", "gm"): τ, ("am", "hm"): τ, ("gm", "hm"): τ}``; ``nan`` with fewer than two rows.
        """
        values = {m: np.array([getattr(r, m) for r in self.rows]) for m in MEANS}
        out = {}
        for i, a in enumerate(MEANS):
            for b in MEANS[i + 1:]:
                out[(a, b)] = (float(kendalltau(values[a], values[b]).statistic) if len(self.rows) > 1
                               else math.nan)
        return out


def power_means(scores: Sequence[float]) -> tuple[float, float, float]:
    """``(AM, GM, HM)`` of positive scores (GM through the mean of logs, so long rows do not overflow)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        raise ConfigError("leaderboard means of an empty task set (no task is shared by every row)")
    if (s <= 0).any():
        raise ConfigError("geometric and harmonic means need positive scores")
    return float(s.mean()), float(np.exp(np.log(s).mean())), float(s.size / (1.0 / s).sum())


def _ranks(values: Sequence[float]) -> list[int]:
    return [int(r) for r in rankdata(-np.asarray(values, dtype=np.float64), method="min")]


def _task_sets(scores: Mapping[str, Mapping[str, float]], tasks: Sequence[str] | None,
               strict: bool) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    order: list[str] = []
    for row in scores.values():
        order.extend(t for t in row if t not in order)
    if tasks is not None:
        unknown = [t for t in tasks if t not in order]
        if unknown:
            raise ConfigError(f"--tasks: {unknown} are not columns of the table (columns: {order})")
        order = [t for t in order if t in tasks]
    if strict:
        reference_model, reference = None, None
        for model, row in scores.items():
            have = set(row) if tasks is None else set(row) & set(order)
            if reference is None:
                reference_model, reference = model, have
                if tasks is not None and have != set(order):
                    missing = [t for t in order if t not in have]
                    raise TaskSetMismatch(f"row {model!r} lacks tasks {missing} named in --tasks (use "
                                          "--intersection to average every row over the tasks all rows share)",
                                          model, missing, [])
                continue
            if have != reference:
                missing = [t for t in order if t in reference and t not in have]
                extra = [t for t in order if t in have and t not in reference]
                raise TaskSetMismatch(
                    f"row {model!r} has a different task set from row {reference_model!r}: lacks {missing}, "
                    f"has extra {extra} (means over different tasks are not comparable; pass --intersection to "
                    "use the tasks every row shares, or --tasks to choose them)", model, missing, extra)
        used = [t for t in order if t in (reference or set())]
    else:
        shared = set(order)
        for row in scores.values():
            shared &= set(row)
        used = [t for t in order if t in shared]
    dropped = {m: tuple(t for t in row if t not in used) for m, row in scores.items()}
    return used, dropped


def leaderboard_means(scores: Mapping[str, Mapping[str, float]], tasks: Sequence[str] | None = None,
                      strict: bool = True, nonpositive: str = "refuse", shift: float | None = None,
                      floor: float = 1e-6) -> LeaderboardMeans:
    """AM, GM and HM of every row over one common task set, with their rankings.

    Args:
        scores: ``{model: {task: score}}``; a row lacks a task by not having the key.
        tasks: the tasks to average over (default: all columns). Column order is kept.
        strict: True (default) refuses rows whose task sets differ (the paper's bug); False averages every row
            over the intersection of the rows' task sets (and ``tasks``), recording per row what was dropped.
        nonpositive: what to do with scores ≤ 0, for which GM and HM are undefined: ``"refuse"`` (raise),
            ``"shift"`` (add ``shift`` to every score of the table; default ``1 − min score``, making the lowest
            score 1; AM ranks are unchanged by a shift), or ``"clip"`` (replace scores below ``floor`` by
            ``floor``). The policy applies to all three means alike.
        shift: the constant of ``"shift"``.
        floor: the floor of ``"clip"`` (> 0).
    Returns:
        :class:`LeaderboardMeans` (rows in input order, each with its means, ranks, tasks used and dropped).
    Raises:
        TaskSetMismatch (a ConfigError): strict mode and rows with different task sets (names the row, the
            missing and extra tasks, and ``--intersection``).
        ConfigError: no shared task, non-finite scores, a score ≤ 0 under ``"refuse"`` (names ``--nonpositive``),
            an unknown policy or a non-positive ``floor``.
    """
    if nonpositive not in NONPOSITIVE_POLICIES:
        raise ConfigError(f"--nonpositive: expected one of {NONPOSITIVE_POLICIES}, got {nonpositive!r}")
    if not scores:
        raise ConfigError("leaderboard_means: the table has no rows")
    for model, row in scores.items():
        for task, value in row.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ConfigError(f"row {model!r}, task {task!r}: expected a finite number, got {value!r}")
    used, dropped = _task_sets(scores, tasks, strict)
    if not used:
        raise ConfigError("no task is shared by every row (check the column names, or pass --tasks)")
    table = {m: np.array([float(scores[m][t]) for t in used]) for m in scores}
    lowest = min(float(v.min()) for v in table.values())
    constant, notes = 0.0, []
    if lowest <= 0:
        where = next((m, used[int(v.argmin())]) for m, v in table.items() if float(v.min()) == lowest)
        if nonpositive == "refuse":
            raise ConfigError(f"row {where[0]!r}, task {where[1]!r}: score {lowest:g} <= 0, for which the geometric "
                              "and harmonic means are undefined; choose --nonpositive shift (add a constant to "
                              "every score) or --nonpositive clip (floor at --clip-floor)")
        if nonpositive == "shift":
            constant = 1.0 - lowest if shift is None else float(shift)
            if lowest + constant <= 0:
                raise ConfigError(f"--shift {constant:g} leaves score {lowest:g} of row {where[0]!r} <= 0")
            table = {m: v + constant for m, v in table.items()}
            notes.append(f"every score shifted by {constant:g} (lowest was {lowest:g})")
        else:
            if not floor > 0:
                raise ConfigError(f"--clip-floor: expected a positive number, got {floor!r}")
            constant = float(floor)
            count = sum(int((v < floor).sum()) for v in table.values())
            table = {m: np.maximum(v, floor) for m, v in table.items()}
            notes.append(f"{count} score(s) below {floor:g} clipped to {floor:g}")
    rows = [LeaderboardRow(m, *power_means(v), tasks=tuple(used), dropped=dropped[m]) for m, v in table.items()]
    for mean in MEANS:
        for row, rank in zip(rows, _ranks([getattr(r, mean) for r in rows])):
            setattr(row, f"rank_{mean}", rank)
    return LeaderboardMeans(rows, nonpositive=nonpositive if lowest <= 0 else "refuse", constant=constant,
                            notes=notes)


# ---------------------------------------------------------------------------------------------------- parsing
_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")


def parse_score(text: str, decimal: str = ".") -> float:
    """Parse one table cell as a float with the declared decimal mark.

    ``decimal="."``: ``"85.3"`` -> 85.3; a comma is ambiguous (thousands separator or decimal comma) and raises.
    ``decimal=","``: ``"85,3"`` and ``"85.3"`` both -> 85.3 (tables that mix the two, as the criticised paper's).
    A cell with both marks (``"1.234,5"``) or several of one raises in either mode. A trailing ``%`` is allowed.

    Raises:
        ValueError: the cell is not a number or is ambiguous (callers turn it into a DataFormatError).
    """
    if decimal not in (".", ","):
        raise ConfigError(f"--decimal: expected '.' or ',', got {decimal!r}")
    cell = text.strip().rstrip("%").strip()
    if "," in cell and "." in cell:
        raise ValueError(f"{text!r} has both a decimal point and a comma (ambiguous)")
    if cell.count(",") + cell.count(".") > 1:
        raise ValueError(f"{text!r} has more than one decimal mark (thousands separators are not accepted)")
    if "," in cell and decimal == ".":
        raise ValueError(f"{text!r} has a comma but --decimal is '.' (pass --decimal , if it is a decimal comma)")
    if not _NUMBER.match(cell):
        raise ValueError(f"{text!r} is not a number")
    return float(cell.replace(",", "."))


@dataclass
class LeaderboardTable:
    """A parsed table: ``scores`` ``{model: {task: float}}``, the task columns, and each row's 1-based line."""

    path: Path
    tasks: list[str]
    scores: dict[str, dict[str, float]]
    lines: dict[str, int]


def _split_rows(text: str, delimiter: str | None) -> list[tuple[int, list[str]]]:
    raw = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]
    if not raw:
        return []
    if raw[0][1].lstrip().startswith("|"):  # a Markdown table
        rows = []
        for number, line in raw:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                continue  # the |---|---| rule
            rows.append((number, cells))
        return rows
    if delimiter is None:
        header = raw[0][1]
        delimiter = next((d for d in ("\t", ";", "|") if d in header), ",")
    reader = csv.reader([line for _, line in raw], delimiter=delimiter)
    return [(number, [c.strip() for c in cells]) for (number, _), cells in zip(raw, reader)]


def read_leaderboard(path: str | Path, decimal: str = ".", delimiter: str | None = None,
                     drop: Iterable[str] = ()) -> LeaderboardTable:
    """Read a leaderboard table: CSV/TSV (``;``, tab or ``|`` detected from the header, else ``,``) or a Markdown
    table. The first column names the model, the header names the tasks; an empty cell or ``-`` is a missing
    task. Columns in ``drop`` (e.g. a published ``score`` column) are ignored.

    Args:
        path: the table file.
        decimal: the decimal mark, ``"."`` or ``","`` (see :func:`parse_score`; with ``","`` use a ``;`` or tab
            delimited file).
        delimiter: force a delimiter.
        drop: column names to ignore.
    Raises:
        DataFormatError: missing file content, a row with the wrong number of cells, a duplicate model or task
            name, an unparsable or ambiguous number (``path:line``, naming the column); a ``drop`` column that
            does not exist.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    rows = _split_rows(text, delimiter)
    if len(rows) < 2:
        raise DataFormatError(path, None, "expected a header row (model, task names...) and at least one row")
    header_line, header = rows[0]
    tasks = header[1:]
    if len(set(tasks)) != len(tasks) or not tasks:
        raise DataFormatError(path, header_line, f"expected distinct task names after the model column, got {tasks}")
    drop = list(drop)
    unknown = [d for d in drop if d not in tasks]
    if unknown:
        raise DataFormatError(path, header_line, f"--drop names {unknown}, which are not columns ({tasks})")
    scores: dict[str, dict[str, float]] = {}
    lines: dict[str, int] = {}
    for number, cells in rows[1:]:
        if len(cells) != len(header):
            raise DataFormatError(path, number, f"expected {len(header)} cells like the header, found {len(cells)}")
        model = cells[0]
        if not model or model in scores:
            raise DataFormatError(path, number, f"model name {model!r} is empty or repeats line {lines.get(model)}")
        row = {}
        for task, cell in zip(tasks, cells[1:]):
            if task in drop or cell.strip().lower() in MISSING_CELLS:
                continue
            try:
                row[task] = parse_score(cell, decimal)
            except ValueError as err:
                raise DataFormatError(path, number, f"column {task!r}: {err}") from None
        scores[model] = row
        lines[model] = number
    return LeaderboardTable(path, [t for t in tasks if t not in drop], scores, lines)
