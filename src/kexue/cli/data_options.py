"""Data options shared by the ``train``/``eval`` commands: where dev and test come from, and the declared labels.

See :mod:`kexue.data.splits` (a single ``--data`` file is never reused as dev or test) and
:mod:`kexue.data.label_checks` (labels checked against the task before work starts).
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from kexue.data.label_checks import parse_score_range

DevFile = Annotated[Optional[str], typer.Option("--dev", help="Dev file (selects best/); replaces --data's dev split. "
                                                              "Needed, or --split-ratio, when --data is one file.")]
TestFile = Annotated[Optional[str], typer.Option("--test", help="Test file; replaces --data's test split.")]
SplitRatio = Annotated[Optional[float], typer.Option(
    "--split-ratio", help="For a single --data file: cut this fraction for dev and again for test (shuffled by "
                          "--seed; recorded in config.json and results.json).")]
ScoreRangeOption = Annotated[Optional[str], typer.Option(
    "--score-range", help="LO,HI: the range of the gold scores (default: the dataset's known range, or inferred "
                          "from the training split); a score outside is an error naming file:line.")]
NumLabels = Annotated[Optional[int], typer.Option(
    "--num-labels", help="Number of classes of your data (labels 0..K-1); without it, data of your own is binary "
                         "(0/1) and any other label is an error naming file:line.")]


def score_range_tuple(text: str | None) -> tuple[float, float] | None:
    """``--score-range LO,HI`` as ``(low, high)`` (raises ConfigError naming the flag)."""
    parsed = parse_score_range(text)
    return None if parsed is None else (parsed.low, parsed.high)
