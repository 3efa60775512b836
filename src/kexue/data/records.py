"""Typed records produced by kexue's dataset readers.

A reader turns each line of a data file into one record; every field is checked at read time, so the
layers above never see a half-parsed line.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SentencePair:
    """One labelled (or unlabelled) sentence pair of a matching / semantic-similarity dataset.

    Used by the CoSENT recipe ("CoSENT(一)", https://kexue.fm/archives/8847) and the Sentence-BERT
    baselines it is compared with.

    Attributes:
        text_a: the first sentence (non-empty).
        text_b: the second sentence (non-empty).
        label: the gold label: ``int`` for categorical/binary data and integer scores (0/1, STS-B-zh 0..5),
            ``float`` for graded scores written with a decimal point (STS-B-en 0.0..5.0), ``None`` for
            unlabelled splits (e.g. CLUE test files).
        id: the row identifier when the file has an id column (PAWS-X), else ``None``.
        line: the 1-based line of the pair in its file (0 when not read from a file); not part of equality. Label
            checks use it to name ``file:line``.
    """

    text_a: str
    text_b: str
    label: float | int | None = None
    id: str | None = None
    line: int = field(default=0, compare=False)

    @property
    def has_label(self) -> bool:
        """Whether the pair carries a gold label."""
        return self.label is not None
