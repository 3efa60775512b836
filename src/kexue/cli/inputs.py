"""The text-line input of the commands that run a model on text (``encode``, ``predict classify|ner|relation|event``):
one text per line, from ``--input FILE`` or standard input, read the same way from both.

Rules: UTF-8 (a BOM on line 1 is dropped), ``\\n`` or ``\\r\\n`` line ends, blank lines allowed only at the end (as
in kexue's data files), at least one text. Every refusal names ``<stdin>`` or the file, and the line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import BinaryIO, TextIO

from kexue.errors import ConfigError, DataFormatError

STDIN_NAME = "<stdin>"


def _decode(raw: bytes, where: str, line_no: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataFormatError(where, line_no, f"expected UTF-8 text, found the byte 0x{raw[err.start]:02x} at byte "
                                              f"{err.start + 1} of the line") from None


def split_text_lines(data: bytes | str, where: str) -> list[str]:
    """The texts of ``data`` (bytes are decoded as UTF-8 line by line), one per line, line ends removed.

    Args:
        data: the whole input; ``where``: its name in messages (a path or ``<stdin>``).
    Returns:
        the lines up to the last non-blank one, each without its ``\\n`` / ``\\r\\n`` (other whitespace is kept).
    Raises:
        DataFormatError(where, line, ...): a line that is not valid UTF-8; a blank line before the last text; an
            input without any text (line ``None``).
    """
    parts = data.split(b"\n") if isinstance(data, bytes) else data.split("\n")
    lines: list[str] = []
    for number, part in enumerate(parts, 1):
        text = _decode(part, where, number) if isinstance(part, bytes) else part
        if number == 1:
            text = text.removeprefix("\ufeff")
        lines.append(text.removesuffix("\r"))
    while lines and not lines[-1].strip():
        lines.pop()  # the final line end, and blank lines at the end
    if not lines:
        raise DataFormatError(where, None, "expected one text per line, found no text (empty input)")
    for number, text in enumerate(lines, 1):
        if not text.strip():
            raise DataFormatError(where, number, "expected one text per line, found a blank line (blank lines are "
                                                 "allowed only at the end)")
    return lines


def read_text_lines(path: Path | None, stdin: BinaryIO | TextIO | None = None, flag: str = "--input") -> list[str]:
    """The texts of the file ``path``, or of standard input when ``path`` is ``None`` (see the module rules).

    Args:
        path: the file given to ``flag`` or ``None``; ``stdin``: the stream to read instead of ``sys.stdin``
            (its ``.buffer`` is used when it has one, so that bytes are decoded here, line by line).
    Raises:
        ConfigError: ``path`` does not exist, is a folder or cannot be read (naming ``flag`` and the path).
        DataFormatError: invalid UTF-8, a blank line inside, or no text at all (see :func:`split_text_lines`).
    """
    if path is None:
        stream = sys.stdin if stdin is None else stdin
        data = getattr(stream, "buffer", stream).read()
        return split_text_lines(data, STDIN_NAME)
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a folder; expected a file with one text per line")
    if not path.exists():
        raise ConfigError(f"{flag} {path}: no such file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{flag} {path}: cannot read it ({err.strerror or err})") from err
    return split_text_lines(data, str(path))
