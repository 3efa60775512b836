"""Run the real ``kexue`` entry point (:func:`kexue.cli.main`) in-process with given stdin bytes, capturing the
exit status and the raw bytes of stdout and stderr; or as a subprocess (``python -m kexue.cli``)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kexue.cli import main

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    """Exit status and captured output of one command."""

    code: int
    stdout: bytes
    stderr: str


def run_cli(args: list[str], stdin: bytes = b"", monkeypatch=None) -> Result:
    """``kexue ARGS`` through :func:`kexue.cli.main` with ``stdin`` as standard input."""
    streams = {name: io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
               for name in ("stdout", "stderr")}
    fake_stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = fake_stdin, streams["stdout"], streams["stderr"]
    try:
        try:
            main(list(args))
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    out = streams["stdout"].buffer.getvalue()
    err = streams["stderr"].buffer.getvalue().decode("utf-8", "replace")
    return Result(code, out, err)


def run_subprocess(args: list[str], stdin: bytes = b"", env: dict[str, str] | None = None) -> Result:
    """``python -m kexue.cli ARGS`` in a fresh interpreter (the console script's code path)."""
    full_env = {k: v for k, v in os.environ.items() if k != "KEXUE_DEBUG"}
    full_env.update({"OMP_NUM_THREADS": "1", **(env or {})})
    proc = subprocess.run([sys.executable, "-m", "kexue.cli", *args], input=stdin, capture_output=True,
                          env=full_env, cwd=REPO, timeout=300)
    return Result(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (to check that a refused command changed nothing)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
