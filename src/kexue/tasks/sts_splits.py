"""The STS recipe's data: the labelled splits of a pair dataset (registered, a folder, or one file with --dev/--test
or a seeded --split-ratio cut), their score range, and label checks. A single file is never reused as dev or test.
Used by ``kexue train sts``, ``eval sts`` and ``train simcse`` (see :mod:`kexue.tasks.sts`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kexue.data.label_checks import ScoreRange, check_scores, infer_score_range
from kexue.data.records import SentencePair
from kexue.data.registry import (DATASETS, canonical_split, is_single_file, load_pairs, registered_score_range,
                                 resolve_dataset)
from kexue.data.splits import check_split_file, check_split_options, cut_dev_test
from kexue.errors import ConfigError


def split_labels(pairs: Sequence[SentencePair], where: str) -> np.ndarray:
    """Labels of ``pairs`` as float64 ``[N]``; raises ConfigError if any pair is unlabelled."""
    if any(p.label is None for p in pairs):
        raise ConfigError(f"{where}: the split has no labels, so it cannot be trained or evaluated on")
    return np.asarray([p.label for p in pairs], dtype=np.float64)


def is_binary(labels: np.ndarray) -> bool:
    """Whether the labels are all 0/1."""
    return bool(np.isin(labels, (0.0, 1.0)).all())


@dataclass
class Splits:
    """The pairs of one dataset: train (may be empty when only evaluating), dev and test (``None`` if absent
    or unlabelled), or ``whole``: a single file evaluated as one set (``eval sts``, ``--extra-eval``), never reported
    as dev or test.

    ``paths`` maps each split present to its file; ``score_range`` is the range every split was checked against
    (``None`` when nothing declared or known it); ``sources`` says in words where each split came from (results.json).
    """

    name: str
    train: list[SentencePair]
    dev: list[SentencePair] | None
    test: list[SentencePair] | None
    whole: list[SentencePair] | None = None
    paths: dict[str, str] = field(default_factory=dict)
    score_range: ScoreRange | None = None
    sources: dict[str, str] = field(default_factory=dict)


def _limit(pairs: list[SentencePair], n: int | None) -> list[SentencePair]:
    return pairs if n is None else pairs[:n]


def _labelled_split(data: str, split: str) -> tuple[list[SentencePair], str] | None:
    """``(pairs, file)`` of ``data``'s own ``split``, or ``None`` when it is missing or unlabelled here."""
    if data in DATASETS:
        if canonical_split(split) not in DATASETS[data].splits:
            return None
        resolved = resolve_dataset(data, split)  # a missing folder or file is an error, not "no split"
    else:
        try:
            resolved = resolve_dataset(data, split)
        except ConfigError:  # a user folder without this split
            return None
    if resolved.labelled is False:
        return None
    pairs = load_pairs(data, split)
    if not pairs or any(p.label is None for p in pairs):
        return None
    return pairs, str(resolved.path)


def _side_file(flag: str, path: str | None) -> tuple[list[SentencePair], str] | None:
    """The pairs of ``--dev``/``--test`` FILE (a file with a split column keeps its own dev/test rows)."""
    file = check_split_file(flag, path)
    if file is None:
        return None
    pairs = load_pairs(file, "dev" if flag == "--dev" else "test")
    split_labels(pairs, f"{flag} {path}")
    return pairs, str(file)


def load_splits(data: str, *, with_train: bool, train_limit: int | None = None, eval_limit: int | None = None,
                dev: str | None = None, test: str | None = None, split_ratio: float | None = None, seed: int = 0,
                score_range: tuple[float, float] | None = None) -> Splits:
    """Read and check the splits of ``data``; a split that is missing or unlabelled here is ``None`` (never silently
    used: the report says it was not evaluated).

    Args:
        data: a registered name, a folder with split files, a file with a split column, or a single file (all of
            it training data: with ``with_train`` it needs ``dev`` or ``split_ratio``; without, it is ``whole``).
        dev / test / split_ratio / seed: see :class:`STSConfig` and :mod:`kexue.data.splits`.
        score_range: declared ``(low, high)``; else the registered range, else inferred from train.

    Raises:
        ConfigError: a single file without ``--dev``/``--split-ratio``, contradicting split options, a missing
            ``--dev``/``--test`` file, an unlabelled train split, an ambiguous inferred score range.
        DataFormatError: a malformed line, or a score outside the range (``file:line``).
    """
    single = is_single_file(data)
    if with_train:
        check_split_options(data, single, dev, test, split_ratio)
    train: list[SentencePair] = []
    found: dict[str, tuple[list[SentencePair], str] | None] = {"dev": None, "test": None, "whole": None}
    sources: dict[str, str] = {}
    train_path = ""
    full_train: list[SentencePair] = []
    if with_train:
        train_path = str(resolve_dataset(data, "train").path)
        train = full_train = load_pairs(data, "train")
        split_labels(train, f"{data} train")
        sources["train"] = train_path
        if split_ratio is not None:
            train, cut_dev, cut_test = cut_dev_test(train, split_ratio, seed)
            found["dev"], found["test"] = (cut_dev, train_path), (cut_test, train_path)
            for split in ("train", "dev", "test"):
                sources[split] = f"{train_path} (--split-ratio {split_ratio:g} cut, seed {seed})"
        train = _limit(train, train_limit)
    elif single:
        whole = load_pairs(data, "train")
        if all(p.label is not None for p in whole):
            found["whole"] = (whole, str(Path(data).expanduser()))
    if not single:
        found["dev"], found["test"] = _labelled_split(data, "dev"), _labelled_split(data, "test")
    for flag, value in (("--dev", dev), ("--test", test)):
        side = _side_file(flag, value)
        if side is not None:
            found[flag[2:]] = side
    for split in ("dev", "test", "whole"):
        if found[split] is not None and split not in sources:
            sources[split] = found[split][1]

    declared = ScoreRange(*score_range) if score_range is not None else None
    rng = declared or registered_score_range(data)
    if rng is None and full_train:  # the whole training file, before any cut or --train-limit
        rng = infer_score_range(train_path, full_train)
    if rng is not None:
        check_scores(train_path, full_train, rng)
        for split in ("dev", "test", "whole"):
            if found[split] is not None:
                check_scores(found[split][1], found[split][0], rng)

    def take(split: str) -> list[SentencePair] | None:
        return None if found[split] is None else _limit(found[split][0], eval_limit)

    paths = {split: found[split][1] for split in ("dev", "test", "whole") if found[split] is not None}
    if train:
        paths["train"] = train_path
    return Splits(str(data), train, take("dev"), take("test"), take("whole"), paths, rng, sources)
