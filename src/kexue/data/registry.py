"""Known datasets: a name maps to its folder under ``$KEXUE_DATA`` and the file, format and label kind of
each split.

Data is found through an explicit path or ``$KEXUE_DATA/<name>`` (DESIGN.md); nothing is downloaded.
The sentence-pair sets are those of the CN-STS suite of "CoSENT(一)", https://kexue.fm/archives/8847
(spec §0), plus the English STS Benchmark and AFQMC; each folder's SOURCE.md gives the row counts.

Split names are normalized: ``dev``, ``valid`` and ``validation`` are one split, whichever name the folder
uses on disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kexue.data.label_checks import ScoreRange
from kexue.data.readers.pairs import detect_pair_format, read_pairs
from kexue.data.records import SentencePair
from kexue.errors import ConfigError

DATA_ENV = "KEXUE_DATA"
"""The environment variable naming the folder that holds one sub-folder per dataset."""

SPLIT_ALIASES = {"dev": "dev", "valid": "dev", "validation": "dev", "val": "dev", "train": "train",
                 "test": "test"}


@dataclass(frozen=True)
class SplitFile:
    """Where one split of a registered dataset lives, relative to the dataset folder.

    Attributes:
        file: file name inside the dataset folder.
        fmt: reader format (see :data:`kexue.data.readers.pairs.PAIR_FORMATS`).
        split_column: value of the file's split column to keep (``stsb`` format), else ``None``.
        labelled: whether the split carries gold labels.
    """

    file: str
    fmt: str
    split_column: str | None = None
    labelled: bool = True


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset.

    Attributes:
        name: registry name, also the folder name under ``$KEXUE_DATA``.
        task: the task family (``"pairs"`` for sentence pairs).
        label_kind: ``"binary"`` (0/1) or ``"graded"`` (ordered scores); decides the evaluation metrics.
        splits: canonical split name (``train``/``dev``/``test``) to :class:`SplitFile`.
        score_range: the inclusive range of the gold scores (``(0, 1)`` for binary sets, whose scores must be exactly
            0 or 1; STS-B ``(0, 5)``); every split is checked against it (:mod:`kexue.data.label_checks`).
    """

    name: str
    task: str
    label_kind: str
    splits: dict[str, SplitFile]
    score_range: tuple[float, float] = (0.0, 1.0)


def _pairs(name: str, label_kind: str, score_range: tuple[float, float] = (0.0, 1.0), **splits: SplitFile
           ) -> DatasetInfo:
    return DatasetInfo(name, "pairs", label_kind, dict(splits), score_range)


DATASETS: dict[str, DatasetInfo] = {d.name: d for d in (
    _pairs("stsb_en", "graded", (0.0, 5.0),
           train=SplitFile("stsbenchmark.tsv", "stsb", "train"),
           dev=SplitFile("stsbenchmark.tsv", "stsb", "dev"),
           test=SplitFile("stsbenchmark.tsv", "stsb", "test")),
    _pairs("stsb_zh", "graded", (0.0, 5.0),
           train=SplitFile("STS-B.train.data", "tsv"),
           dev=SplitFile("STS-B.valid.data", "tsv"),
           test=SplitFile("STS-B.test.data", "tsv")),
    _pairs("afqmc", "binary",
           train=SplitFile("train.txt", "tsv"),
           dev=SplitFile("dev.txt", "tsv"),
           test=SplitFile("test.txt", "tsv", labelled=False)),
    _pairs("atec", "binary",
           dev=SplitFile("ATEC.valid.data", "tsv"),
           test=SplitFile("ATEC.test.data", "tsv")),
    _pairs("bq", "binary",
           dev=SplitFile("dev.tsv", "tsv"),
           test=SplitFile("test_unlabeled.tsv", "tsv", labelled=False)),
    _pairs("lcqmc", "binary",
           dev=SplitFile("dev.txt", "tsv"),
           test=SplitFile("test.txt", "tsv")),
    _pairs("pawsx_zh", "binary",
           dev=SplitFile("dev_2k.tsv", "id-tsv"),
           test=SplitFile("test_2k.tsv", "id-tsv")),
)}
"""Registered datasets by name."""


@dataclass(frozen=True)
class ResolvedSplit:
    """A split located on disk, ready for :func:`kexue.data.readers.pairs.read_pairs`.

    Attributes:
        path: the file.
        fmt: its format (detected for files given by path).
        split: the split-column value to pass to the reader, or ``None``.
        labelled: whether gold labels are expected (``None`` if unknown: a user file).
        label_kind: ``"binary"``/``"graded"`` for registered datasets, ``None`` for user files.
        dataset: the registry name, or ``None``.
    """

    path: Path
    fmt: str
    split: str | None
    labelled: bool | None = None
    label_kind: str | None = None
    dataset: str | None = None


def canonical_split(split: str) -> str:
    """``train``/``dev``/``test`` for a split name or alias (``valid``, ``validation``, ``val``).

    Raises:
        ConfigError: an unknown split name.
    """
    key = split.strip().lower()
    if key not in SPLIT_ALIASES:
        raise ConfigError(f"--split: expected one of train, dev (valid), test; got {split!r}")
    return SPLIT_ALIASES[key]


def data_root(root: str | Path | None = None) -> Path:
    """The datasets folder: ``root`` if given, else ``$KEXUE_DATA``.

    Raises:
        ConfigError: neither is set, or the folder does not exist.
    """
    if root is None:
        env = os.environ.get(DATA_ENV)
        if not env:
            raise ConfigError(f"no data folder: set ${DATA_ENV} to the folder holding one sub-folder per "
                              f"dataset, or pass a path")
        root = env
    path = Path(root)
    if not path.is_dir():
        raise ConfigError(f"data folder {path} (from ${DATA_ENV} or the given root) does not exist")
    return path


def _find_in_folder(folder: Path, split: str) -> Path:
    """The file of ``split`` inside a user folder: ``{alias}.*``, ``*.{alias}.*``, ``*_{alias}`` or
    ``{alias}_*``; failing that, the folder's only file with a split column (``stsb`` format)."""
    aliases = [a for a, c in SPLIT_ALIASES.items() if c == split]
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() != ".md")
    found = [p for p in files if any(p.stem.lower() == a or p.stem.lower().endswith(("." + a, "_" + a))
                                     or p.stem.lower().startswith(a + "_") for a in aliases)]
    if not found:
        found = [p for p in files if detect_pair_format(p) == "stsb"]
    if len(found) != 1:
        what = "no file" if not found else f"{len(found)} files ({', '.join(p.name for p in found)})"
        raise ConfigError(f"split {split!r} in {folder}: expected one file named like "
                          f"{' / '.join(a + '.*' for a in aliases)} or one file with a split column, "
                          f"found {what}")
    return found[0]


def _user_file(path: Path, split: str) -> ResolvedSplit:
    fmt = detect_pair_format(path)
    return ResolvedSplit(path, fmt, split if fmt == "stsb" else None)


def resolve_dataset(name_or_path: str | Path, split: str, root: str | Path | None = None) -> ResolvedSplit:
    """Locate one split of a dataset.

    Args:
        name_or_path: a registered name (``stsb_en``, ``afqmc`` ... see :data:`DATASETS`), a file (its
            format is detected; a file with a split column is filtered to ``split``), or a folder with one
            file per split (``train.txt``, ``dev.tsv``, ``X.valid.data`` ...) or a single file with a
            split column. A registered name whose folder is absent is an error.
        split: ``train``, ``dev`` (alias ``valid``/``validation``) or ``test``.
        root: the datasets folder for registered names; defaults to ``$KEXUE_DATA``.

    Returns:
        A :class:`ResolvedSplit`.

    Raises:
        ConfigError: an unknown name that is no existing path (the message lists the known names and
            ``$KEXUE_DATA``), a split the dataset does not ship, or a missing file.
    """
    canon = canonical_split(split)
    key = str(name_or_path)
    if key in DATASETS:
        info = DATASETS[key]
        if canon not in info.splits:
            raise ConfigError(f"dataset {key!r} has no {canon!r} split here; available: "
                              f"{', '.join(info.splits)}")
        entry = info.splits[canon]
        path = data_root(root) / key / entry.file
        if not path.is_file():
            raise ConfigError(f"dataset {key!r}: expected {path} (${DATA_ENV}/{key}/{entry.file}), not found")
        return ResolvedSplit(path, entry.fmt, entry.split_column, entry.labelled, info.label_kind, key)
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return _user_file(path, canon)
    if path.is_dir():
        return _user_file(_find_in_folder(path, canon), canon)
    raise ConfigError(f"unknown dataset {key!r}: not a registered name ({', '.join(DATASETS)}; found under "
                      f"${DATA_ENV}) and no such file or folder")


def registered_score_range(name: str) -> ScoreRange | None:
    """The known score range of a registered dataset (``None`` for a path)."""
    info = DATASETS.get(str(name))
    if info is None:
        return None
    return ScoreRange(*info.score_range, binary=info.label_kind == "binary", source="registered")


def is_single_file(name_or_path: str | Path) -> bool:
    """Whether ``--data`` is one file without a split column: all of it is the training split (see
    :mod:`kexue.data.splits`)."""
    if str(name_or_path) in DATASETS:
        return False
    path = Path(name_or_path).expanduser()
    return path.is_file() and detect_pair_format(path) != "stsb"


def load_pairs(name_or_path: str | Path, split: str, root: str | Path | None = None) -> list[SentencePair]:
    """Resolve ``split`` of a dataset and read it with :func:`kexue.data.readers.pairs.read_pairs`.

    Raises:
        ConfigError: as :func:`resolve_dataset`. DataFormatError: a malformed line.
    """
    resolved = resolve_dataset(name_or_path, split, root)
    return read_pairs(resolved.path, resolved.split, resolved.fmt)
