"""Shared helper for bench scripts: write one named section of docs/RESULTS.md, keeping the others."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "RESULTS.md"
HEADER = "# kexue results\n\nEach section is written by the bench script it names; rerun it to refresh.\n"


def machine() -> str:
    """A one-line description of this machine (CPU model, cores, torch threads, torch version)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def provenance(seed: int | str | None = None) -> str:
    """Markdown lines: the command, machine, date and seed of this run."""
    cmd = " ".join(["python"] + [Path(sys.argv[0]).as_posix().split("/")[-2] + "/" + Path(sys.argv[0]).name]
                   + sys.argv[1:])
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=RESULTS.parent.parent, check=False).stdout.strip()
    except OSError:
        commit = "?"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"- command: `{cmd}`", f"- machine: {machine()}", f"- date: {when}, commit {commit or '?'}"]
    if seed is not None:
        lines.append(f"- seed(s): {seed}")
    return "\n".join(lines) + "\n"


def write_section(name: str, markdown: str) -> Path:
    """Replace (or append) the section ``name`` of docs/RESULTS.md with ``markdown``; returns the path."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else HEADER
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text, encoding="utf-8")
    return RESULTS


def run_main(main) -> None:
    """Run a bench script's ``main()``: a kexue error (bad flag value, missing data or model) becomes one line on
    stderr and exit status 2, not a traceback."""
    from kexue.errors import KexueError

    try:
        main()
    except KexueError as err:
        print(f"{Path(sys.argv[0]).name}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
