"""Decoding data files line by line, so that a bad byte is reported with its file and line.

Python's text-mode ``open(..., encoding="utf-8")`` raises a bare :class:`UnicodeDecodeError` that names neither the
file nor the line. Every kexue reader of a line-based file goes through :func:`iter_lines` (or :func:`read_text` for
whole-file JSON) instead, so invalid UTF-8 becomes a :class:`~kexue.errors.DataFormatError` ``path:line: ...``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from kexue.errors import ConfigError, DataFormatError

__all__ = ["check_file", "iter_lines", "read_text", "decode_line"]


def check_file(path: str | Path, what: str = "data file") -> Path:
    """``path`` as a :class:`Path` once it is known to be an existing regular file.

    Raises:
        ConfigError: it does not exist, or it is a folder (the message says which).
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path}: expected a file, found a folder")
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    return path


def decode_line(raw: bytes, path: Path, line_no: int) -> str:
    """One line's bytes as text (UTF-8; a BOM on line 1 is dropped; the ``\\n`` and one ``\\r`` are removed).

    Raises:
        DataFormatError(path, line_no, ...): the bytes are not valid UTF-8 (the column of the first bad byte is
            named).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, line_no, f"expected UTF-8 text, found the undecodable byte "
                                             f"0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line") from None
    if line_no == 1:
        text = text.removeprefix("\ufeff")
    return text.removesuffix("\n").removesuffix("\r")


def iter_lines(path: str | Path, what: str = "data file") -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` (1-based; line ends removed) for every line of a UTF-8 file.

    Lines are split on ``\\n`` only, as the readers of :mod:`kexue.data.readers.pairs` do.

    Raises:
        ConfigError: the file is missing or a folder. DataFormatError: a line that is not valid UTF-8.
    """
    path = check_file(path, what)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            yield number, decode_line(raw, path, number)


def read_text(path: str | Path, what: str = "data file") -> str:
    """The whole file as text (for whole-file JSON such as a DuIE schema array); a BOM is dropped.

    Raises:
        ConfigError: the file is missing or a folder. DataFormatError: invalid UTF-8, named by the line of the first
            bad byte (computed from its byte offset).
    """
    path = check_file(path, what)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line_no = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataFormatError(path, line_no, f"expected UTF-8 text, found the undecodable byte "
                                             f"0x{raw[exc.start]:02x} at byte {column} of the line") from None
