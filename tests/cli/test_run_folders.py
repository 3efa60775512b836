"""Run folders through the real CLI: refusals before any work (nothing on disk changed), --overwrite, --resume rules,
crash leftovers repaired, export targets, unwritable paths and a full disk."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
import torch

from kexue.cli import main
from kexue.errors import StorageError
from kexue.train import Trainer, TrainerConfig


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_info:
        code = 0 if exit_info.code is None else exit_info.code
    out, err = capsys.readouterr()
    return code, out, err


def _sts(out: Path, model: Path, *extra: str) -> list[str]:
    return ["train", "sts", "--model", str(model), "--data", "stsb_en", "--train-limit", "24", "--eval-limit", "16",
            "--batch-size", "8", "--max-steps", "4", "--save-every", "2", "--eval-every", "2", "--lr", "1e-3",
            "--no-progress", "--output", str(out), *extra]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(folder.rglob("*"))}


def _finished_looking_run(folder: Path) -> None:
    (folder / "best").mkdir(parents=True)
    (folder / "best" / "model.safetensors").write_bytes(b"a dev-94.07 model")
    (folder / "config.json").write_text('{"trainer": {}}\n')
    (folder / "metrics.jsonl").write_text('{"event": "eval", "step": 10, "spearman": 94.07}\n')


def test_new_run_refuses_a_non_empty_output_before_any_work(tmp_path, capsys, tiny_bert_dir, kexue_data):
    run = tmp_path / "run"
    _finished_looking_run(run)
    before = _snapshot(run)
    code, out, err = _cli(capsys, *_sts(run, tiny_bert_dir))
    assert "before training" not in out + err  # refused before the zero-shot evaluation
    assert code == 1 and "Traceback" not in err
    assert f"--output {run}" in err and "not empty" in err and "--resume" in err and "--overwrite" in err
    assert _snapshot(run) == before


def test_overwrite_replaces_the_run_and_says_so(tmp_path, capsys, tiny_bert_dir, kexue_data):
    run = tmp_path / "run"
    _finished_looking_run(run)
    code, out, err = _cli(capsys, *_sts(run, tiny_bert_dir, "--overwrite"))
    assert code == 0, err
    assert f"--overwrite: deleted the previous contents of {run}" in out + err
    assert b"dev-94.07" not in (run / "best" / "model.safetensors").read_bytes()
    assert json.loads((run / "config.json").read_text())["trainer"]["overwrite"] is True


def test_resume_without_a_checkpoint_refuses_and_keeps_the_metrics(tmp_path, capsys, tiny_bert_dir, kexue_data):
    run = tmp_path / "run"
    _finished_looking_run(run)
    before = _snapshot(run)
    code, _, err = _cli(capsys, *_sts(run, tiny_bert_dir, "--resume"))
    assert code == 1 and "Traceback" not in err
    assert f"--resume: {run} holds no checkpoint" in err and "--overwrite" in err
    assert _snapshot(run) == before


def test_resume_and_overwrite_are_exclusive(tmp_path, capsys, tiny_bert_dir):
    code, _, err = _cli(capsys, *_sts(tmp_path / "run", tiny_bert_dir, "--resume", "--overwrite"))
    assert code == 1 and "--resume and --overwrite" in err and not (tmp_path / "run").exists()


def test_resume_of_an_empty_folder_starts_a_new_run_and_says_so(tmp_path, capsys, tiny_bert_dir, kexue_data):
    run = tmp_path / "run"
    code, out, err = _cli(capsys, *_sts(run, tiny_bert_dir, "--resume"))
    assert code == 0, err
    assert f"--resume: {run} holds no run yet; starting a new run" in out + err
    assert (run / "best").is_dir()


def test_resume_refuses_options_that_change_training_and_allows_the_others(tmp_path, capsys, tiny_bert_dir,
                                                                           kexue_data):
    run = tmp_path / "run"
    assert _cli(capsys, *_sts(run, tiny_bert_dir))[0] == 0
    before = _snapshot(run)
    changed = [a if a != "1e-3" else "5e-3" for a in _sts(run, tiny_bert_dir, "--resume", "--loss", "mse")]
    code, _, err = _cli(capsys, *changed)
    assert code == 1 and "Traceback" not in err
    assert "--lr: 0.001 -> 0.005" in err and "--loss: cosent -> mse" in err
    assert _snapshot(run) == before  # config.json does not record the refused options
    # display and checkpoint-frequency options may change
    code, out, err = _cli(capsys, *[a if a != "2" or i < 20 else "3" for i, a in
                                    enumerate(_sts(run, tiny_bert_dir, "--resume", "--keep-checkpoints", "2"))])
    assert code == 0, err
    assert "resumed from" in out + err


def test_crash_leftovers_are_repaired_on_resume(tmp_path, capsys, tiny_bert_dir, kexue_data):
    """The state checkpointing.py names: killed between the two renames of best/ -> .old-best-*/x and no best/
    (plus the complete new export in .tmp-best-*, and a half-written .tmp-step-*)."""
    run = tmp_path / "run"
    assert _cli(capsys, *_sts(run, tiny_bert_dir))[0] == 0
    results = json.loads((run / "results.json").read_text())
    (run / ".old-best-k3j2").mkdir()
    (run / "best").rename(run / ".old-best-k3j2" / "x")
    shutil.copytree(run / "last", run / ".tmp-best-zz9")
    (run / "checkpoints" / ".tmp-step-00000099-q1").mkdir()
    (run / "checkpoints" / ".tmp-step-00000099-q1" / "training_state.pt").write_bytes(b"half")
    code, out, err = _cli(capsys, *_sts(run, tiny_bert_dir, "--resume"))
    assert code == 0, err
    assert "restored best/ from .old-best-k3j2" in out + err
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == [".kexue.lock"]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-00000004"]
    again = json.loads((run / "results.json").read_text())
    assert Path(again["best_dir"]).is_dir()
    evals = [e["spearman"] for e in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
             if e["event"] == "eval"]
    assert again["after"]["dev"]["spearman"] == pytest.approx(max(evals), abs=1e-6)
    assert again["after"] == results["after"]


def test_export_refuses_a_non_empty_target(tmp_path, capsys, tiny_bert_dir):
    target = tmp_path / "exported"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    code, _, err = _cli(capsys, "export", str(tmp_path / "no-such-model"), str(target))
    assert code == 1 and "Traceback" not in err and f"{target}: the export folder is not empty" in err
    assert "--overwrite" in err and [p.name for p in target.iterdir()] == ["keep.txt"]
    code, _, err = _cli(capsys, "export", str(tiny_bert_dir), str(target), "--overwrite")
    assert code == 0, err
    assert (target / "modules.json").is_file() and not (target / "keep.txt").exists()


def test_an_output_under_a_file_is_one_line_naming_the_path(tmp_path, capsys, tiny_bert_dir, kexue_data):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, _, err = _cli(capsys, *_sts(blocker / "run", tiny_bert_dir))
    assert code == 1 and "Traceback" not in err
    assert str(blocker / "run") in err and len(err.strip().splitlines()) == 1


def _linear_trainer(tmp_path) -> Trainer:
    """A 4-step regression run that writes a checkpoint every 2 steps into tmp_path/run."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    data = [{"x": torch.randn(4), "y": torch.randn(())} for _ in range(8)]
    cfg = TrainerConfig(output_dir=tmp_path / "run", max_steps=4, batch_size=2, save_every=2, progress_bar=False)
    return Trainer(model, cfg, data,
                   compute_loss=lambda m, b: torch.nn.functional.mse_loss(m(b["x"]).squeeze(-1), b["y"]))


def test_disk_full_during_a_checkpoint_is_a_storage_error_naming_the_path(tmp_path, monkeypatch):
    import kexue.train.checkpointing as C

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    trainer = _linear_trainer(tmp_path)
    real_save = C.torch.save
    calls = []

    def save_then_fill(obj, f, *a, **k):
        calls.append(f)
        if len(calls) == 2:
            full()
        real_save(obj, f, *a, **k)

    monkeypatch.setattr(C.torch, "save", save_then_fill)
    with pytest.raises(StorageError) as info:
        trainer.fit()
    message = str(info.value)
    assert f"cannot write {tmp_path / 'run' / 'checkpoints' / 'step-00000004'}: No space left on device" in message
    assert f"the last complete checkpoint is {tmp_path / 'run' / 'checkpoints' / 'step-00000002'}" in message
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step-00000002"]


def test_disk_full_before_any_checkpoint_says_to_start_again_with_overwrite(tmp_path, monkeypatch):
    import kexue.train.checkpointing as C

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    trainer = _linear_trainer(tmp_path)
    monkeypatch.setattr(C.torch, "save", full)
    with pytest.raises(StorageError) as info:
        trainer.fit()
    message = str(info.value)
    assert "no complete checkpoint was written" in message and "--overwrite" in message
    assert "--resume" not in message  # --resume refuses a folder without a checkpoint
