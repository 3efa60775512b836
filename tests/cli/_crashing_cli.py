"""Test-only wrapper of ``kexue.cli.main`` that SIGKILLs its own process at a chosen point (``KEXUE_TEST_CRASH``)
and can hold training after step 2 until a file exists (``KEXUE_TEST_HOLD=<path>``), to create real crash states.

Crash points (``KIND:N``):
    step:N          after optimizer step N
    save:N          in the middle of writing the N-th training checkpoint (half a state file on disk)
    best-rename:N   between the two renames of the N-th replacement of ``best/``
"""

from __future__ import annotations

import os
import signal
import sys
import time


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _install() -> None:
    import torch

    import kexue.train.checkpointing as C
    from kexue.train.hooks import HookList
    from kexue.train.trainer import Trainer

    hold = os.environ.get("KEXUE_TEST_HOLD")
    if hold:
        original_loss = Trainer.compute_loss

        def held_loss(self, batch):
            while self.state.global_step >= 2 and not os.path.exists(hold):
                time.sleep(0.05)
            return original_loss(self, batch)

        Trainer.compute_loss = held_loss
    crash = os.environ.get("KEXUE_TEST_CRASH")
    if not crash:
        return
    kind, n = crash.split(":")
    n = int(n)
    count = [0]
    if kind == "step":
        original_call = HookList.call

        def call(self, name, trainer, *args):
            original_call(self, name, trainer, *args)
            if name == "on_step_end" and trainer.state.global_step == n:
                _die()

        HookList.call = call
    elif kind == "save":
        original_save = torch.save

        def save(obj, f, *args, **kwargs):
            count[0] += 1
            if count[0] == n:
                original_save(obj, f, *args, **kwargs)
                with open(f, "r+b") as fh:  # leave half a file, as a kill during the write would
                    fh.truncate(os.path.getsize(f) // 2)
                _die()
            return original_save(obj, f, *args, **kwargs)

        C.torch.save = save
    elif kind == "best-rename":
        original_rename = C.os.rename

        def rename(src, dst):
            original_rename(src, dst)
            if os.path.basename(str(src)) == "best" and os.path.basename(os.path.dirname(str(dst))).startswith(
                    ".old-best-"):
                count[0] += 1
                if count[0] == n:
                    _die()

        C.os.rename = rename
    else:
        raise SystemExit(f"unknown KEXUE_TEST_CRASH {crash!r}")


if __name__ == "__main__":
    _install()
    from kexue.cli import main

    main(sys.argv[1:])
