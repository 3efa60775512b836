"""Atomic checkpoints: a failed write leaves the previous checkpoint intact; pruning; loading errors."""

from __future__ import annotations

import pytest
import torch

from kexue.errors import CheckpointError
from kexue.train import atomic_directory, find_latest_checkpoint, load_checkpoint, save_checkpoint
from kexue.train.checkpointing import STATE_FILE, list_checkpoints


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("disk full")  # stands in for a crash in the middle of torch.save


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path):
    ckpts = tmp_path / "checkpoints"
    save_checkpoint(ckpts, 3, {"w": torch.arange(4.0), "step": 3})
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(ckpts, 6, {"w": torch.zeros(4), "bad": Unpicklable()})
    latest = find_latest_checkpoint(ckpts)
    assert latest is not None and latest.name == "step-00000003"
    state = load_checkpoint(latest)
    assert state["step"] == 3 and torch.equal(state["w"], torch.arange(4.0))
    assert [p.name for p in ckpts.iterdir()] == ["step-00000003"]  # the temporary folder is gone


def test_leftover_temporary_folders_are_ignored(tmp_path):
    ckpts = tmp_path / "checkpoints"
    save_checkpoint(ckpts, 2, {"step": 2})
    (ckpts / ".tmp-step-00000009-abc").mkdir()  # a crash left a half-written folder behind
    (ckpts / ".tmp-step-00000009-abc" / STATE_FILE).write_bytes(b"half")
    (ckpts / "step-00000011").mkdir()  # and a folder without a state file
    assert find_latest_checkpoint(ckpts).name == "step-00000002"


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, {"step": step}, keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3, 4]


def test_atomic_directory_replaces_only_on_success(tmp_path):
    dest = tmp_path / "best"
    with atomic_directory(dest) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(ValueError):
        with atomic_directory(dest) as tmp:
            (tmp / "a.txt").write_text("second")
            raise ValueError("export failed")
    assert (dest / "a.txt").read_text() == "first"
    with atomic_directory(dest) as tmp:
        (tmp / "b.txt").write_text("third")
    assert sorted(p.name for p in dest.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_corrupt_or_missing_state_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no training state"):
        load_checkpoint(tmp_path)
    (tmp_path / STATE_FILE).write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path)
