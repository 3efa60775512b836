"""JSON-lines records with a ``text`` field: the common shape of CLUENER, DuIE and CMeIE files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from kexue.data.readers.text_lines import iter_lines
from kexue.errors import DataFormatError


def iter_text_records(path: str | Path, label_key: str, require_labels: bool = True,
                      missing_hint: str = "") -> Iterator[tuple[int, dict, str]]:
    """Yield ``(line_number, record, text)`` for each non-blank line of a JSON-lines file.

    Args:
        path: the file (UTF-8, one JSON object per line; blank lines are allowed and skipped).
        label_key: the key that holds the annotation (``label``, ``spo_list`` ...).
        require_labels: whether a record without ``label_key`` is an error (False for unlabelled test files).
        missing_hint: appended to the "missing key" message (e.g. how to read a test file).

    Raises:
        DataFormatError(path, line, reason): invalid UTF-8 or JSON, a record that is not an object with a string
            ``text``, or a missing ``label_key`` when ``require_labels``.
        ConfigError: the file is missing or a folder.
    """
    path = Path(path)
    for number, raw in iter_lines(path):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as err:
            raise DataFormatError(path, number, f"invalid JSON: {err.msg}") from None
        text = record.get("text") if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise DataFormatError(path, number, "expected an object with a string 'text'")
        if label_key not in record and require_labels:
            raise DataFormatError(path, number, f"missing {label_key!r}{missing_hint}")
        yield number, record, text
