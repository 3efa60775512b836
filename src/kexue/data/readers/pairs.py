"""Readers for sentence-pair (text matching / semantic similarity) files.

Formats (the ``fmt`` names accepted by :func:`read_pairs`):

* ``"stsb"``: the STS Benchmark layout of sentence-transformers: a tab-separated header
  ``split genre dataset year sid score sentence1 sentence2`` and one row per pair; the ``split`` column
  says train/dev/test, ``score`` is a float 0..5 (``$KEXUE_DATA/stsb_en/stsbenchmark.tsv``).
* ``"tsv"``: ``text_a \\t text_b \\t label`` (CN-STS ``*.data``, LCQMC/AFQMC ``*.txt``, BQ ``*.tsv``), or
  ``text_a \\t text_b`` for unlabelled test splits; an optional header row (``sentence1 sentence2 label``).
* ``"id-tsv"``: ``id \\t text_a \\t text_b \\t label`` with an optional header (PAWS-X ``dev_2k.tsv``).
* ``"jsonl"``: one JSON object per line with keys ``sentence1``, ``sentence2`` and, in labelled splits,
  ``label`` (CLUE's AFQMC ``*.json``; the label may be a number or a numeric string).
* ``"sohu"``: the Sohu 2021 contest's JSON lines ``{source, target, labelA|labelB}``
  (:mod:`kexue.data.readers.sohu`).

All readers decode UTF-8 line by line (a leading BOM is dropped), split lines on ``\\n`` only and strip
one trailing ``\\r`` (CRLF files). Blank lines are allowed only at the end of a file. Anything else that
does not fit raises :class:`~kexue.errors.DataFormatError` naming the file, the 1-based line number and
what was expected versus found; nothing is skipped silently.

Source of the formats: the CN-STS data layout of "CoSENT(一)", https://kexue.fm/archives/8847 (spec
§0), and the SOURCE.md of each folder under ``$KEXUE_DATA``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

from kexue.data.readers.text_lines import check_file, decode_line
from kexue.data.records import SentencePair
from kexue.errors import ConfigError, DataFormatError

PAIR_FORMATS = ("stsb", "tsv", "id-tsv", "jsonl", "sohu")
"""The format names :func:`read_pairs` understands."""

HEADER_NAMES = frozenset({
    "id", "sid", "label", "labels", "score", "similarity", "gold_label",
    "sentence1", "sentence2", "sentence_1", "sentence_2", "text_a", "text_b", "text1", "text2",
    "s1", "s2", "query1", "query2", "question1", "question2", "text_left", "text_right",
})
"""Column names that mark a first line as a header row in the ``tsv``/``id-tsv`` formats."""

STSB_COLUMNS = ("split", "score", "sentence1", "sentence2")
_INT_RE = re.compile(r"[+-]?\d+")


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """The ``(line_no, text)`` of every line up to the last non-blank one, decoded and without ``\\r``."""
    raw = check_file(path, "data file").read_bytes()
    chunks = raw.split(b"\n")
    if chunks and chunks[-1] == b"":
        chunks.pop()
    lines: list[tuple[int, str]] = []
    for i, chunk in enumerate(chunks):
        lines.append((i + 1, decode_line(chunk, path, i + 1)))
    while lines and not lines[-1][1].strip():
        lines.pop()
    if not lines:
        raise DataFormatError(path, None, "expected at least one sentence pair, found an empty file")
    for line_no, text in lines:
        if not text.strip():
            raise DataFormatError(path, line_no, "expected a sentence pair, found a blank line "
                                                 "(blank lines are allowed only at the end of the file)")
    return lines


def parse_label(value: object, path: Path | str, line_no: int, what: str = "label") -> int | float:
    """Parse a gold label: an integer literal gives ``int``, any other finite number ``float``.

    Raises:
        DataFormatError: the value is not a finite number (e.g. ``"abc"``, ``""``, ``nan``, ``true``).
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataFormatError(path, line_no, f"{what}: expected a number, found {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if _INT_RE.fullmatch(text):
            return int(text)
        try:
            value = float(text)
        except ValueError:
            raise DataFormatError(path, line_no, f"{what}: expected a number, found {text!r}") from None
    if not math.isfinite(value):
        raise DataFormatError(path, line_no, f"{what}: expected a finite number, found {value!r}")
    return float(value)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _check_text(text: str, path: Path, line_no: int, what: str) -> str:
    if not text.strip():
        raise DataFormatError(path, line_no, f"{what}: expected a non-empty sentence, found {text!r}")
    return text


def _is_header(fields: Sequence[str]) -> bool:
    return all(f.strip().lower() in HEADER_NAMES for f in fields)


def _read_columns(path: Path, n_text: int, with_id: bool, header: bool | None) -> list[SentencePair]:
    """Shared body of the ``tsv`` and ``id-tsv`` readers (``n_text`` leading fields before the label)."""
    lines = _read_lines(path)
    names = "id, text_a, text_b" if with_id else "text_a, text_b"
    first_fields = lines[0][1].split("\t")
    if header is None:
        header = _is_header(first_fields)
    if header:
        lines = lines[1:]
        if not lines:
            raise DataFormatError(path, None, "expected sentence pairs after the header row, found none")
    width = len(lines[0][1].split("\t"))
    if width not in (n_text, n_text + 1):
        raise DataFormatError(path, lines[0][0], f"expected {n_text} or {n_text + 1} tab-separated fields "
                                                 f"({names}[, label]), found {width}")
    labelled = width == n_text + 1
    expected = f"{width} tab-separated fields ({names}{', label' if labelled else ''}) like line {lines[0][0]}"
    pairs: list[SentencePair] = []
    for line_no, text in lines:
        fields = text.split("\t")
        if len(fields) != width:
            raise DataFormatError(path, line_no, f"expected {expected}, found {len(fields)}")
        offset = 1 if with_id else 0
        pair_id = fields[0].strip() if with_id else None
        if with_id and not pair_id:
            raise DataFormatError(path, line_no, "id: expected a non-empty id, found ''")
        a = _check_text(fields[offset], path, line_no, "text_a")
        b = _check_text(fields[offset + 1], path, line_no, "text_b")
        label = parse_label(fields[-1], path, line_no) if labelled else None
        pairs.append(SentencePair(a, b, label, pair_id, line_no))
    return pairs


def read_pair_tsv(path: str | Path, header: bool | None = None) -> list[SentencePair]:
    """Read ``text_a \\t text_b \\t label`` (or unlabelled ``text_a \\t text_b``) lines.

    Args:
        path: a ``.data``/``.txt``/``.tsv`` file (CN-STS, LCQMC, AFQMC, BQ layouts, spec §0).
        header: whether the first line is a header row; ``None`` detects it (every field a known column
            name such as ``sentence1``/``sentence2``/``label``).

    Returns:
        One :class:`SentencePair` per data line; ``label`` is ``None`` when lines have two fields.

    Raises:
        DataFormatError: a line with another field count than the first data line, an empty sentence,
            a non-numeric label, a non-UTF-8 line, a blank line inside the file, or an empty file.
        ConfigError: the file does not exist.
    """
    return _read_columns(Path(path), 2, False, header)


def read_id_pair_tsv(path: str | Path, header: bool | None = None) -> list[SentencePair]:
    """Read ``id \\t text_a \\t text_b \\t label`` (or unlabelled ``id \\t text_a \\t text_b``) lines.

    The PAWS-X layout (``$KEXUE_DATA/pawsx_zh/{dev,test}_2k.tsv``, header ``id sentence1 sentence2 label``).
    Arguments, return value and errors as :func:`read_pair_tsv`; the id is kept in ``SentencePair.id``.
    """
    return _read_columns(Path(path), 3, True, header)


def read_stsb_tsv(path: str | Path, split: str | None = None) -> list[SentencePair]:
    """Read the STS Benchmark tsv with a header and a ``split`` column (sentence-transformers layout).

    Args:
        path: e.g. ``$KEXUE_DATA/stsb_en/stsbenchmark.tsv`` (CRLF line ends are handled).
        split: keep only rows whose ``split`` column equals this (``train``/``dev``/``test``); ``None``
            keeps every row.

    Returns:
        Pairs ``(sentence1, sentence2, score)`` with ``score`` a ``float`` in the file's units (0..5).

    Raises:
        DataFormatError: no header naming the columns ``split``, ``score``, ``sentence1``, ``sentence2``; a
            row whose field count differs from the header's; an empty sentence; a non-numeric score.
        ConfigError: ``split`` names no split present in the file (the message lists those found).
    """
    path = Path(path)
    lines = _read_lines(path)
    columns = [c.strip().lower() for c in lines[0][1].split("\t")]
    missing = [c for c in STSB_COLUMNS if c not in columns]
    if missing:
        raise DataFormatError(path, lines[0][0], f"expected a header row naming the columns "
                                                 f"{', '.join(STSB_COLUMNS)}; found {lines[0][1][:200]!r} "
                                                 f"(missing {', '.join(missing)})")
    col = {c: columns.index(c) for c in STSB_COLUMNS}
    pairs: list[SentencePair] = []
    seen: set[str] = set()
    for line_no, text in lines[1:]:
        fields = text.split("\t")
        if len(fields) != len(columns):
            raise DataFormatError(path, line_no, f"expected {len(columns)} tab-separated fields as in the "
                                                 f"header ({', '.join(columns)}), found {len(fields)}")
        row_split = fields[col["split"]].strip()
        seen.add(row_split)
        if split is not None and row_split != split:
            continue
        a = _check_text(fields[col["sentence1"]], path, line_no, "sentence1")
        b = _check_text(fields[col["sentence2"]], path, line_no, "sentence2")
        score = float(parse_label(fields[col["score"]], path, line_no, "score"))
        pairs.append(SentencePair(a, b, score, line=line_no))
    if split is not None and not pairs:
        raise ConfigError(f"split {split!r} not found in {path}; its split column holds: "
                          f"{', '.join(sorted(seen)) or '(no rows)'}")
    return pairs


def read_pair_jsonl(path: str | Path, text_keys: tuple[str, str] = ("sentence1", "sentence2"),
                    label_key: str = "label") -> list[SentencePair]:
    """Read JSON lines, one object per pair (CLUE layout, e.g. AFQMC ``train.json``).

    Args:
        path: the file.
        text_keys: the keys of the two sentences.
        label_key: the label's key; the first record decides whether the file is labelled, and every
            record must then agree. An ``id`` key, when present, is kept as a string.

    Raises:
        DataFormatError: invalid JSON, a value that is not an object, a missing key, a non-string or
            empty sentence, a non-numeric label.
        ConfigError: the file does not exist.
    """
    path = Path(path)
    labelled: bool | None = None
    first_line = 0
    pairs: list[SentencePair] = []
    for line_no, text in _read_lines(path):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFormatError(path, line_no, f"expected a JSON object, found invalid JSON ({exc.msg} "
                                                 f"at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise DataFormatError(path, line_no, f"expected a JSON object, found {type(obj).__name__}")
        texts = []
        for key in text_keys:
            if key not in obj:
                raise DataFormatError(path, line_no, f"missing key {key!r} (keys found: {', '.join(obj)})")
            if not isinstance(obj[key], str):
                raise DataFormatError(path, line_no, f"{key}: expected a string, found "
                                                     f"{type(obj[key]).__name__}")
            texts.append(_check_text(obj[key], path, line_no, key))
        if labelled is None:
            labelled, first_line = label_key in obj, line_no
        if labelled and label_key not in obj:
            raise DataFormatError(path, line_no, f"missing key {label_key!r} (line {first_line} is labelled)")
        if not labelled and label_key in obj:
            raise DataFormatError(path, line_no, f"unexpected key {label_key!r} (line {first_line} is "
                                                 f"unlabelled)")
        label = parse_label(obj[label_key], path, line_no) if labelled else None
        pair_id = str(obj["id"]) if "id" in obj else None
        pairs.append(SentencePair(texts[0], texts[1], label, pair_id, line_no))
    return pairs


def detect_pair_format(path: str | Path) -> str:
    """Guess the format of a sentence-pair file from its name and first line.

    Rules: a JSON first line with ``"source"`` and ``"target"`` keys is ``sohu``; else a ``.jsonl``/``.json``
    suffix or a first line starting with ``{`` is ``jsonl``; a header holding
    ``split``, ``score``, ``sentence1`` and ``sentence2`` is ``stsb``; a header whose first column is ``id``,
    or four tab-separated fields, is ``id-tsv``; anything else is ``tsv``.

    Raises:
        ConfigError: the file does not exist.  DataFormatError: it is empty or not UTF-8.
    """
    path = Path(path)
    first = _read_lines(path)[0][1]
    if first.lstrip().startswith("{") and '"source"' in first and '"target"' in first:
        return "sohu"
    if path.suffix.lower() in (".jsonl", ".json") or first.lstrip().startswith("{"):
        return "jsonl"
    fields = [f.strip().lower() for f in first.split("\t")]
    if all(c in fields for c in STSB_COLUMNS):
        return "stsb"
    if (fields[0] == "id" and _is_header(fields)) or (len(fields) == 4 and _is_number(fields[-1])):
        return "id-tsv"
    return "tsv"


def read_pairs(path: str | Path, split: str | None = None, fmt: str | None = None) -> list[SentencePair]:
    """Read any supported sentence-pair file into :class:`SentencePair` records.

    Args:
        path: the file.
        split: for files with a split column (``stsb``), the split to keep; must be ``None`` for the other
            formats, whose splits are separate files (see :mod:`kexue.data.registry`).
        fmt: one of :data:`PAIR_FORMATS`; ``None`` detects it with :func:`detect_pair_format`.

    Returns:
        The pairs in file order.

    Raises:
        ConfigError: unknown ``fmt``, missing file, ``split`` given for a format without a split column, or
            a split not present in the file.
        DataFormatError: a malformed line (path, line number, expected vs found).
    """
    if fmt is None:
        fmt = detect_pair_format(path)
    if fmt not in PAIR_FORMATS:
        raise ConfigError(f"--format: expected one of {', '.join(PAIR_FORMATS)}, got {fmt!r}")
    if fmt == "stsb":
        return read_stsb_tsv(path, split)
    if split is not None:
        raise ConfigError(f"split={split!r} given for {path}, whose format {fmt!r} has no split column; "
                          f"pass the split's own file instead")
    if fmt == "tsv":
        return read_pair_tsv(path)
    if fmt == "id-tsv":
        return read_id_pair_tsv(path)
    if fmt == "sohu":
        from kexue.data.readers.sohu import read_sohu
        return read_sohu(path).pairs
    return read_pair_jsonl(path)


def pair_labels(pairs: Sequence[SentencePair]) -> list[float | int]:
    """The labels of ``pairs`` in order.

    Raises:
        ConfigError: a pair has no label (an unlabelled split used where labels are needed).
    """
    labels = []
    for i, pair in enumerate(pairs):
        if pair.label is None:
            raise ConfigError(f"pair {i} has no label: this split is unlabelled and cannot be used for "
                              f"training or evaluation")
        labels.append(pair.label)
    return labels
