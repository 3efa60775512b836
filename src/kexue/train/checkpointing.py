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

from kexue.errors import CheckpointError

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
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".old-{path.name}-", dir=path.parent))
        os.rename(path, old / "x")  # move aside inside a fresh hidden folder
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, path)


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
    """
    dest = checkpoint_path(checkpoints_dir, step)
    with atomic_directory(dest) as tmp:
        torch.save(state, tmp / STATE_FILE)
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
