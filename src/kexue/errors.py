"""Typed errors raised by kexue.

Every message says what was expected, what was found and where (file and line, checkpoint key, or option).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class KexueError(Exception):
    """Base class of every error kexue raises on purpose."""


class DataFormatError(KexueError, ValueError):
    """A data file does not have the expected format.

    Args:
        path: the file that was being read.
        line: 1-based line number (or record number for whole-file JSON), ``None`` if not line-based.
        reason: what was expected and what was found.
    """

    def __init__(self, path: object, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {reason}")


class CheckpointError(KexueError):
    """A checkpoint cannot be loaded exactly as asked.

    Args:
        message: the headline (what was being loaded, from where).
        missing: parameter names the model needs that the checkpoint lacks.
        unexpected: checkpoint keys the model has no place for.
        mismatched: ``{key: (expected_shape, found_shape)}``.
    """

    def __init__(
        self,
        message: str,
        *,
        missing: Iterable[str] = (),
        unexpected: Iterable[str] = (),
        mismatched: Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]] | None = None,
    ) -> None:
        self.missing = sorted(missing)
        self.unexpected = sorted(unexpected)
        self.mismatched = dict(mismatched or {})
        parts = [message]
        if self.missing:
            parts.append(f"missing keys ({len(self.missing)}): " + ", ".join(self.missing[:20])
                         + (" ..." if len(self.missing) > 20 else ""))
        if self.unexpected:
            parts.append(f"unexpected keys ({len(self.unexpected)}): " + ", ".join(self.unexpected[:20])
                         + (" ..." if len(self.unexpected) > 20 else ""))
        for key, (want, got) in list(self.mismatched.items())[:20]:
            parts.append(f"shape mismatch for {key}: model expects {tuple(want)}, checkpoint has {tuple(got)}")
        super().__init__("\n  ".join(parts))


class ConfigError(KexueError, ValueError):
    """An option or configuration value is invalid; the message names the option."""


class StorageError(KexueError, OSError):
    """A file or folder cannot be written or read back (disk full, permission denied, a path through a file, a
    read-only file system); the message names the path and says what is still intact."""
