"""Readers for text classification files: single texts (``text \\t label``) and text pairs
(``text_a \\t text_b \\t label``, through :mod:`kexue.data.readers.pairs`).

Registered datasets (folders under ``$KEXUE_DATA``, row counts in each SOURCE.md):

* ``sst2`` — ``{train,dev,test}.tsv`` with a header ``sentence \\t label``; ``test.tsv`` is the labelled GLUE dev set;
* ``sentiment_zh`` — ``sentiment.{train,valid,test}.data``, no header, ``text \\t label`` (bert4keras' set);
* ``afqmc`` — ``{train,dev,test}.txt``, ``text_a \\t text_b \\t label``; ``test.txt`` is unlabelled.

Labels are non-negative integer class ids. Lines are decoded as UTF-8 (a leading BOM is dropped), CRLF endings are
accepted, blank lines only at the end of a file; anything else raises :class:`~kexue.errors.DataFormatError`
naming the file, the 1-based line and what was expected versus found. Nothing is skipped silently.

Used by the classification recipe that exercises the training techniques of https://kexue.fm/archives/7234,
https://kexue.fm/archives/8634 and https://kexue.fm/archives/8764.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kexue.data.readers.pairs import _read_lines, parse_label, read_pair_tsv
from kexue.data.registry import canonical_split, data_root
from kexue.errors import ConfigError, DataFormatError

__all__ = ["TextExample", "ClassificationDataset", "CLASSIFICATION_DATASETS", "read_text_label_tsv",
           "read_text_pair_label_tsv", "read_classification", "load_classification", "resolve_classification",
           "labels_of"]

_HEADER_TEXT = frozenset({"sentence", "text", "text_a", "review", "content", "sentence1"})
_HEADER_LABEL = frozenset({"label", "labels", "class", "target"})


@dataclass(frozen=True, slots=True)
class TextExample:
    """One classification example.

    Attributes:
        text: the text (non-empty); for pairs the first text.
        text_pair: the second text of a pair task, ``None`` for single-text tasks.
        label: class id (``int >= 0``), or ``None`` in unlabelled splits.
        line: the 1-based line in its file (0 when not read from a file); not part of equality. Label checks use it
            to name ``file:line``.
    """

    text: str
    text_pair: str | None = None
    label: int | None = None
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class ClassificationDataset:
    """A registered classification dataset: its folder name, whether it is a pair task, its class count and the
    ``(file, labelled)`` of each split."""

    name: str
    pair: bool
    num_labels: int
    splits: dict[str, tuple[str, bool]]


CLASSIFICATION_DATASETS: dict[str, ClassificationDataset] = {d.name: d for d in (
    ClassificationDataset("sst2", False, 2, {"train": ("train.tsv", True), "dev": ("dev.tsv", True),
                                             "test": ("test.tsv", True)}),
    ClassificationDataset("sentiment_zh", False, 2, {"train": ("sentiment.train.data", True),
                                                     "dev": ("sentiment.valid.data", True),
                                                     "test": ("sentiment.test.data", True)}),
    ClassificationDataset("afqmc", True, 2, {"train": ("train.txt", True), "dev": ("dev.txt", True),
                                             "test": ("test.txt", False)}),
)}
"""Registered classification datasets by name."""


def _class_id(value: str, path: Path, line_no: int) -> int:
    label = parse_label(value, path, line_no)
    if not isinstance(label, int) or label < 0:
        raise DataFormatError(path, line_no, f"label: expected a class id (integer >= 0), found {value.strip()!r}")
    return label


def read_text_label_tsv(path: str | Path, header: bool | None = None) -> list[TextExample]:
    """Read ``text \\t label`` lines (or unlabelled ``text`` lines) into :class:`TextExample` records.

    Args:
        path: e.g. ``$KEXUE_DATA/sst2/train.tsv`` or ``$KEXUE_DATA/sentiment_zh/sentiment.train.data``.
        header: whether the first line is a header row; ``None`` detects it (a first line like
            ``sentence \\t label`` whose fields are known column names).

    Returns:
        One example per data line, in file order (``text_pair`` is ``None``).

    Raises:
        DataFormatError: a line whose field count differs from the first data line's (1 or 2 fields), an empty
            text, a label that is not an integer >= 0, a non-UTF-8 line, a blank line inside the file, an empty file.
        ConfigError: the file does not exist.
    """
    path = Path(path)
    lines = _read_lines(path)
    first = [f.strip().lower() for f in lines[0][1].split("\t")]
    if header is None:
        header = len(first) == 2 and first[0] in _HEADER_TEXT and first[1] in _HEADER_LABEL
    if header:
        lines = lines[1:]
        if not lines:
            raise DataFormatError(path, None, "expected examples after the header row, found none")
    width = len(lines[0][1].split("\t"))
    if width not in (1, 2):
        raise DataFormatError(path, lines[0][0], f"expected 1 or 2 tab-separated fields (text[, label]), "
                                                 f"found {width}")
    examples: list[TextExample] = []
    for line_no, text in lines:
        fields = text.split("\t")
        if len(fields) != width:
            raise DataFormatError(path, line_no, f"expected {width} tab-separated field(s) "
                                                 f"({'text, label' if width == 2 else 'text'}) like line "
                                                 f"{lines[0][0]}, found {len(fields)}")
        if not fields[0].strip():
            raise DataFormatError(path, line_no, f"text: expected a non-empty text, found {fields[0]!r}")
        label = _class_id(fields[1], path, line_no) if width == 2 else None
        examples.append(TextExample(fields[0], None, label, line_no))
    return examples


def read_text_pair_label_tsv(path: str | Path, header: bool | None = None) -> list[TextExample]:
    """Read ``text_a \\t text_b \\t label`` lines (AFQMC layout) with :func:`kexue.data.readers.pairs.read_pair_tsv`.

    Returns: examples with ``text_pair`` set; ``label`` ``None`` for unlabelled files (two fields).
    Raises: as :func:`read_pair_tsv`, and DataFormatError (with the line) for a label that is not an integer >= 0.
    """
    path = Path(path)
    pairs = read_pair_tsv(path, header)
    out = []
    for pair in pairs:
        if pair.label is not None and (not isinstance(pair.label, int) or pair.label < 0):
            raise DataFormatError(path, pair.line, f"label: expected a class id (integer >= 0), "
                                                   f"found {pair.label!r}")
        out.append(TextExample(pair.text_a, pair.text_b, pair.label, pair.line))
    return out


def read_classification(path: str | Path, pair: bool | None = None) -> list[TextExample]:
    """Read a classification file; ``pair=None`` detects the layout (three tab-separated fields, or two fields
    whose last is not a number, mean a text pair).

    Raises: as the readers; ConfigError for a missing file.
    """
    path = Path(path)
    if pair is None:
        first = _read_lines(path)[0][1].split("\t")
        last = first[-1].strip()
        pair = len(first) == 3 or (len(first) == 2 and not last.lstrip("+-").isdigit()
                                   and last.lower() not in _HEADER_LABEL)
    return read_text_pair_label_tsv(path) if pair else read_text_label_tsv(path)


def resolve_classification(name_or_path: str | Path, split: str, root: str | Path | None = None
                           ) -> tuple[Path, bool | None, bool | None]:
    """Locate a split: ``(file, pair, labelled)``; ``pair``/``labelled`` are ``None`` for user files.

    Args:
        name_or_path: a registered name (:data:`CLASSIFICATION_DATASETS`), a file (used for any split), or a folder
            with files named ``train.*``, ``dev.*`` / ``valid.*``, ``test.*`` (or ``*.train.*`` ...).
        split: ``train``, ``dev`` (``valid``) or ``test``.
        root: the datasets folder; default ``$KEXUE_DATA``.

    Raises: ConfigError for an unknown name / missing file or split.
    """
    canon = canonical_split(split)
    key = str(name_or_path)
    if key in CLASSIFICATION_DATASETS:
        info = CLASSIFICATION_DATASETS[key]
        if canon not in info.splits:
            raise ConfigError(f"dataset {key!r} has no {canon!r} split")
        file, labelled = info.splits[canon]
        path = data_root(root) / key / file
        if not path.is_file():
            raise ConfigError(f"dataset {key!r}: expected {path} ($KEXUE_DATA/{key}/{file}), not found")
        return path, info.pair, labelled
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path, None, None
    if path.is_dir():
        aliases = {"train": ("train",), "dev": ("dev", "valid", "validation", "val"), "test": ("test",)}[canon]
        found = [p for p in sorted(path.iterdir()) if p.is_file() and p.suffix.lower() != ".md"
                 and any(p.stem.lower() == a or p.stem.lower().endswith("." + a)
                         or p.name.lower().startswith(a + ".") for a in aliases)]
        if len(found) != 1:
            raise ConfigError(f"split {canon!r} in {path}: expected one file named like {aliases[0]}.* , found "
                              f"{len(found)} ({', '.join(p.name for p in found)})")
        return found[0], None, None
    raise ConfigError(f"unknown classification dataset {key!r}: not a registered name "
                      f"({', '.join(CLASSIFICATION_DATASETS)}) and no such file or folder")


def load_classification(name_or_path: str | Path, split: str, root: str | Path | None = None) -> list[TextExample]:
    """Resolve and read one split of a classification dataset (see :func:`resolve_classification`).

    Raises: ConfigError (unknown dataset / split, a registered labelled split without labels), DataFormatError.
    """
    path, pair, labelled = resolve_classification(name_or_path, split, root)
    examples = read_classification(path, pair)
    if labelled and any(e.label is None for e in examples):
        raise DataFormatError(path, None, "expected a label on every line of this labelled split")
    return examples


def labels_of(examples: Sequence[TextExample], where: str) -> list[int]:
    """The labels of ``examples``; raises ConfigError if any is missing (an unlabelled split used for training)."""
    if any(e.label is None for e in examples):
        raise ConfigError(f"{where}: the split has no labels, so it cannot be trained or evaluated on")
    return [int(e.label) for e in examples]
