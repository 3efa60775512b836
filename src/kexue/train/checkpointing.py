"""Atomic training checkpoints and model exports.

Layout inside a run folder::

    checkpoints/step-00000120/training_state.pt    full training state at optimizer step 120
    best/  last/                                   model exports (HF format, written by ``save_model``)

Every write goes to a hidden temporary folder beside its destination (``.tmp-<name>-XXXX``, same file
system) and is moved into place with ``os.rename`` only once it is complete, so a crash or an exception in
the middle of a write never damages the previous checkpoint: readers only ever see complete folders. A new
``step-N`` name does not exist yet, so its rename is a single atomic operation. Replacing an existing folder
(``best/``, ``last/``, or a step saved twice) takes two renames (old folder aside, new folder in, then the old
one deleted); a crash between them leaves the old folder under ``.old-<name>-XXXX`` and no ``<name>``.

Crash states and what :func:`recover_leftovers` (run by :func:`kexue.train.prepare_run_dir` at the start of every
run, under the run folder's lock) makes of them:

1. killed while writing: a partial ``.tmp-<name>-XXXX`` beside an intact ``<name>`` -> the temporary folder is
   deleted;
2. killed between the two renames: ``.old-<name>-XXXX/x`` and no ``<name>`` (the complete new folder may still sit
   in ``.tmp-<name>-YYYY``) -> the old folder is moved back to ``<name>`` and the temporary one deleted; the old
   folder is the one that matches the last complete training checkpoint, and resuming replays the steps after it;
3. killed after the second rename: ``<name>`` (new) and ``.old-<name>-XXXX`` -> the old folder is deleted.

Write failures (a full disk, no permission) raise :class:`~kexue.errors.StorageError` naming the path.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_model
from torch import nn

from kexue.errors import CheckpointError, StorageError

STATE_FILE = "training_state.pt"
_STEP_DIR = re.compile(r"^step-(\d+)$")


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Context manager yielding a fresh temporary folder that replaces ``path`` when the block succeeds.

    If the block raises, the temporary folder is deleted and ``path`` is left exactly as it was.

    Args:
        path: the destination folder; its parent is created if missing.

    Yields:
        the temporary folder (``Path``) to write into.

    Raises:
        StorageError: naming ``path``, when the folder cannot be created or moved into place (an ``OSError``
            inside the block is re-raised as a StorageError naming ``path`` as well).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    except OSError as exc:
        raise storage_error(path, exc) from exc
    try:
        yield tmp
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, StorageError):
            raise
        raise storage_error(path, exc) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".old-{path.name}-", dir=path.parent))
            os.rename(path, old / "x")  # move aside inside a fresh hidden folder
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    except OSError as exc:
        raise storage_error(path, exc) from exc


def storage_error(path: str | Path, exc: BaseException) -> StorageError:
    """A :class:`StorageError` naming ``path`` for a failed write (``exc``: the OSError, or torch's / safetensors'
    write error that wraps one)."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).strip().splitlines()[0]
    return StorageError(f"cannot write {path}: {reason}")


def is_write_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed write: an ``OSError``, or the ``RuntimeError`` torch.save / safetensors raise
    when the underlying write fails (``file write failed``, ``IoError``, ``No space left``)."""
    if isinstance(exc, OSError):
        return True
    text = str(exc).lower()
    return any(marker in text for marker in ("write failed", "ioerror", "no space left", "unexpected pos"))


def recover_leftovers(folder: str | Path) -> list[str]:
    """Repair the crash states of :func:`atomic_directory` in ``folder`` (see the module docstring) and delete
    every stale ``.tmp-*`` / ``.old-*`` entry; only call this while no other process writes ``folder``.

    Returns:
        one line per action taken (``"restored best/ from .old-best-1a2b"``, ``"removed .tmp-step-00000200-x9"``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    done = []
    for old in sorted(folder.glob(".old-*")):
        name = old.name[len(".old-"):].rsplit("-", 1)[0]
        target = folder / name
        if (old / "x").is_dir() and not target.exists():
            os.rename(old / "x", target)
            done.append(f"restored {name}/ from {old.name}")
    for stale in sorted([*folder.glob(".old-*"), *folder.glob(".tmp-*")]):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
        done.append(f"removed {stale.name}")
    return done


def checkpoint_path(checkpoints_dir: str | Path, step: int) -> Path:
    """The folder of the checkpoint at optimizer ``step``: ``checkpoints_dir/step-{step:08d}``."""
    return Path(checkpoints_dir) / f"step-{step:08d}"


def list_checkpoints(checkpoints_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``checkpoints_dir`` as ``(step, folder)`` sorted by step; temporary folders
    and folders without a state file are ignored."""
    root = Path(checkpoints_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        m = _STEP_DIR.match(child.name)
        if m and (child / STATE_FILE).is_file():
            found.append((int(m.group(1)), child))
    return sorted(found)


def find_latest_checkpoint(checkpoints_dir: str | Path) -> Path | None:
    """The complete checkpoint with the highest step in ``checkpoints_dir``, or ``None`` if there is none."""
    found = list_checkpoints(checkpoints_dir)
    return found[-1][1] if found else None


def save_checkpoint(checkpoints_dir: str | Path, step: int, state: dict[str, Any], keep: int = 1) -> Path:
    """Write ``state`` atomically as the checkpoint of ``step`` and delete all but the newest ``keep``.

    Args:
        checkpoints_dir: the run's ``checkpoints/`` folder.
        step: optimizer step the state belongs to.
        state: nested dicts/lists of tensors, numbers and strings (loadable with ``weights_only=True``).
        keep: number of newest checkpoints to keep (>= 1).

    Returns:
        the checkpoint folder.

    Raises:
        StorageError: naming the checkpoint folder, when it cannot be written (disk full, no permission); the
            previous checkpoints are left intact.
    """
    dest = checkpoint_path(checkpoints_dir, step)
    with atomic_directory(dest) as tmp:
        try:
            torch.save(state, tmp / STATE_FILE)
        except Exception as exc:
            if not is_write_failure(exc):
                raise
            raise storage_error(dest, exc) from exc
    for _, old in list_checkpoints(checkpoints_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint folder written by :func:`save_checkpoint` (tensors on CPU).

    Raises:
        CheckpointError: if the state file is missing or cannot be read.
    """
    file = Path(path) / STATE_FILE
    if not file.is_file():
        raise CheckpointError(f"no training state at {file}")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types (pickle, RuntimeError, EOFError)
        raise CheckpointError(f"cannot read training state {file}: {exc}") from exc


def default_save_model(model: nn.Module, path: Path) -> None:
    """Export ``model`` into folder ``path``: ``model.save_pretrained(path)`` if it has that method (kexue's
    Transformer, transformers and peft models), else its state dict as ``model.safetensors``."""
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(path)
    else:
        save_model(model, str(path / "model.safetensors"))
