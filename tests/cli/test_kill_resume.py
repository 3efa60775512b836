"""Real crashes: a CLI training SIGKILLed at several points (after a step, inside a checkpoint write, between the two
renames of best/) and then resumed ends with exactly the uninterrupted run's parameters and best/; Ctrl-C exits 130
with a checkpoint that --resume continues from; a second process writing the same folder is refused at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from kexue.cli import main

HERE = Path(__file__).resolve().parent
WRAPPER = HERE / "_crashing_cli.py"


def _args(out: Path, model: Path, *extra: str) -> list[str]:
    return ["train", "sts", "--model", str(model), "--data", "stsb_en", "--train-limit", "32", "--eval-limit", "16",
            "--batch-size", "8", "--epochs", "2", "--save-every", "2", "--eval-every", "2", "--lr", "1e-3",
            "--seed", "3", "--no-progress", "--output", str(out), *extra]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(HERE.parents[1] / "src"))
    env.update(extra)
    return env


def _in_process(args: list[str]) -> None:
    try:
        main(args)
    except SystemExit as exit_info:
        assert exit_info.code in (0, None), exit_info.code


def _evals(run: Path) -> list[dict]:
    return [e for e in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if e["event"] == "eval"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_bert_dir, kexue_data) -> Path:
    run = tmp_path_factory.mktemp("reference") / "run"
    _in_process(_args(run, tiny_bert_dir))
    return run


def _same_final_model(run: Path, reference: Path) -> None:
    got, want = load_file(run / "last" / "model.safetensors"), load_file(reference / "last" / "model.safetensors")
    assert got.keys() == want.keys()
    for key in want:
        assert (got[key] == want[key]).all(), key
    best = json.loads((run / "best" / "trainer_export.json").read_text())
    want_best = json.loads((reference / "best" / "trainer_export.json").read_text())
    assert best["step"] == want_best["step"]
    assert best["metrics"]["spearman"] == max(e["spearman"] for e in _evals(reference))
    results = json.loads((run / "results.json").read_text())
    assert Path(results["best_dir"]).is_dir()
    assert results["after"] == json.loads((reference / "results.json").read_text())["after"]


@pytest.mark.parametrize("crash", ["step:5", "save:3", "best-rename:1"])
def test_sigkill_then_resume_equals_the_uninterrupted_run(crash, tmp_path, tiny_bert_dir, reference):
    if crash.startswith("best-rename"):
        scores = [e["spearman"] for e in _evals(reference)]
        improvements = sum(b > max(scores[:i + 1]) for i, b in enumerate(scores[1:]))
        assert improvements >= 1, "the reference run must replace best/ at least once for this crash point"
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(WRAPPER), *_args(run, tiny_bert_dir)], env=_env(KEXUE_TEST_CRASH=crash),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    if crash.startswith("save"):
        assert any(p.name.startswith(".tmp-step-") for p in (run / "checkpoints").iterdir())
    if crash.startswith("best-rename"):
        assert not (run / "best").exists() and any(p.name.startswith(".old-best-") for p in run.iterdir())
    _in_process(_args(run, tiny_bert_dir, "--resume"))
    _same_final_model(run, reference)
    assert not [p for p in [*run.iterdir(), *(run / "checkpoints").iterdir()] if p.name.startswith((".tmp-", ".old-"))]


def _sigint_as_in_a_terminal() -> None:
    """Give the child the default SIGINT disposition. A shell starts background jobs (``make test &``, nohup) with
    SIGINT ignored and children inherit that, so without this the test would depend on how pytest was launched."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_saves_a_checkpoint_exits_130_and_a_second_writer_is_refused(tmp_path, tiny_bert_dir, reference):
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, str(WRAPPER), *_args(run, tiny_bert_dir)],
                             env=_env(KEXUE_TEST_HOLD=str(tmp_path / "go")), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, preexec_fn=_sigint_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 90
        while not (run / "checkpoints" / "step-00000002").is_dir():
            assert first.poll() is None and time.monotonic() < deadline, "training did not reach step 2"
            time.sleep(0.1)
        start = time.monotonic()
        second = subprocess.run([sys.executable, "-m", "kexue.cli", *_args(run, tiny_bert_dir, "--resume")],
                                env=_env(), capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert f"--output {run}: another kexue process is writing this run folder" in second.stderr
        assert time.monotonic() - start < 30
        assert first.poll() is None, "the first run must still be training when the second is refused"
        first.send_signal(signal.SIGINT)  # arrives in the middle of step 3, which is held until "go" exists
        time.sleep(0.5)
        (tmp_path / "go").write_text("")
        _, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, err
    assert "Traceback" not in err
    line = next(line for line in err.splitlines() if line.startswith("interrupted at step"))
    step = int(line.split()[3])
    assert f"checkpoint saved in {run / 'checkpoints' / f'step-{step:08d}'}" in line
    assert step == 3 and (run / "checkpoints" / f"step-{step:08d}" / "training_state.pt").is_file()
    _in_process(_args(run, tiny_bert_dir, "--resume"))
    _same_final_model(run, reference)
