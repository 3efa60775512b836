"""Where dev and test come from when ``--data`` is one file: ``--dev FILE`` / ``--test FILE``, or a seeded
``--split-ratio`` cut — never the training file itself.

A "test" score computed on the examples the model was trained on is a training score; kexue refuses to produce one.
The training commands (``train sts``, ``train classify``) call :func:`check_split_options` before any work and
:func:`cut_dev_test` for ``--split-ratio``; the run's config.json records the ratio and ``--seed``, results.json the
resulting sizes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from kexue.errors import ConfigError

T = TypeVar("T")

__all__ = ["check_split_options", "cut_dev_test", "check_split_file", "MIN_EVAL_EXAMPLES"]

MIN_EVAL_EXAMPLES = 2
"""Fewest examples a cut dev or test split may hold (a Spearman correlation needs two)."""


def check_split_options(data: str, single_file: bool, dev: str | None, test: str | None,
                        split_ratio: float | None) -> None:
    """Refuse split options that would evaluate on training data or that contradict each other.

    Args:
        data: the ``--data`` value (for messages).
        single_file: whether ``--data`` is one file without a split column (its examples are all "train").
        dev / test: ``--dev`` / ``--test`` files, or ``None``.
        split_ratio: ``--split-ratio``, or ``None``.

    Raises:
        ConfigError: a single file without ``--dev`` or ``--split-ratio`` (the message names the flags);
            ``--split-ratio`` together with ``--dev``/``--test``, or with data that has its own splits; a ratio
            outside ``(0, 0.5)``.
    """
    if split_ratio is not None:
        if not 0.0 < split_ratio < 0.5:
            raise ConfigError(f"--split-ratio: expected a fraction in (0, 0.5) cut for dev and again for test, "
                              f"got {split_ratio}")
        if dev is not None or test is not None:
            raise ConfigError("--split-ratio cuts dev and test from the --data file; it cannot be combined with "
                              "--dev/--test")
        if not single_file:
            raise ConfigError(f"--split-ratio: --data {data} already has its own dev/test splits; the ratio applies "
                              f"only to a single --data file")
    elif single_file and dev is None:
        raise ConfigError(f"--data {data} is a single file, so it is the training split only; pass --dev FILE (and "
                          f"--test FILE) for the splits to evaluate on, or --split-ratio 0.1 to cut dev and test from "
                          f"it (seeded by --seed), or point --data at a folder with train/dev/test files")
    if single_file:
        for flag, value in (("--dev", dev), ("--test", test)):
            if value is not None and Path(value).expanduser().resolve() == Path(data).expanduser().resolve():
                raise ConfigError(f"{flag} {value} is the --data file itself: its score would be a training score; "
                                  f"pass another file, or --split-ratio to cut {flag[2:]} from --data")


def check_split_file(flag: str, path: str | None) -> Path | None:
    """The ``--dev``/``--test`` path, checked to be an existing file.

    Raises:
        ConfigError: it is missing or a folder (the message names ``flag``).
    """
    if path is None:
        return None
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"{flag} {path}: " + ("expected a file, found a folder" if file.is_dir()
                                                 else "no such file"))
    return file


def cut_dev_test(items: Sequence[T], ratio: float, seed: int, flag: str = "--split-ratio"
                 ) -> tuple[list[T], list[T], list[T]]:
    """Shuffle ``items`` with ``seed`` and cut ``(train, dev, test)``: dev and test each ``round(ratio * N)``
    examples (at least :data:`MIN_EVAL_EXAMPLES`), train the rest; the three are disjoint and their union is
    ``items``.

    Raises:
        ConfigError: too few examples for non-empty train and two-example dev/test (names ``flag``).
    """
    n = len(items)
    n_eval = max(MIN_EVAL_EXAMPLES, round(ratio * n))
    if n - 2 * n_eval < 1:
        raise ConfigError(f"{flag} {ratio}: {n} example(s) are too few to cut dev and test of {n_eval} each and keep "
                          f"a training split")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    dev = [items[i] for i in sorted(order[:n_eval])]
    test = [items[i] for i in sorted(order[n_eval:2 * n_eval])]
    train = [items[i] for i in sorted(order[2 * n_eval:])]
    return train, dev, test
