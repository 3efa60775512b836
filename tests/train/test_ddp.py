"""Data parallelism: 2 processes (gloo, CPU) reach the parameters of 1 process over the same global batch.

The two workers get exactly the environment torchrun gives its workers (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) and join through the Trainer's own env:// initialisation.
They are forked from the test process so they do not pay torch's import again (a real
``python -m torch.distributed.run --standalone --nproc_per_node 2 tests/train/ddp_worker.py OUT`` runs the
same code; it costs ~20 s of CPU on this machine, mostly three imports of torch).
"""

from __future__ import annotations

import os
import socket
import time

import torch
import torch.multiprocessing as mp
from ddp_worker import build
from safetensors.torch import load_file

from kexue.train import read_metrics


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, output_dir: str, port: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    trainer = build(output_dir)
    assert trainer.world_size == 2 and trainer.rank == rank
    trainer.fit()
    torch.distributed.destroy_process_group()


def test_two_processes_match_one(tmp_path):
    # the single-process reference runs first, so the forked workers inherit every lazily imported module
    single = build(str(tmp_path / "single"))
    assert single.world_size == 1
    initial = {k: v.clone() for k, v in single.model.state_dict().items()}
    single.fit()
    context = mp.start_processes(_worker, args=(str(tmp_path / "ddp"), _free_port()), nprocs=2, join=False,
                                 start_method="fork")
    deadline = time.monotonic() + 120
    while not context.join(timeout=1):  # raises if a worker failed
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            raise AssertionError("the 2-process run did not finish within 120 s")

    ddp = load_file(tmp_path / "ddp" / "last" / "model.safetensors")
    for name, param in single.model.state_dict().items():
        torch.testing.assert_close(ddp[name], param, rtol=0, atol=1e-6)
        assert (param - initial[name]).abs().max() > 1e-3, name  # training moved every tensor
    # the logged loss is averaged over ranks, so it equals the single-process loss of the global batch
    logged = [[r["loss"] for r in read_metrics(tmp_path / run / "metrics.jsonl") if r["event"] == "train"]
              for run in ("ddp", "single")]
    assert len(logged[0]) == len(logged[1]) == 6
    torch.testing.assert_close(torch.tensor(logged[0]), torch.tensor(logged[1]), rtol=0, atol=1e-9)
