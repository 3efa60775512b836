"""Worker for test_ddp.py: trains the tiny float64 model with 2 processes under torchrun (gloo on CPU).

Usage: ``python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_worker.py OUTPUT_DIR``.
"""

from __future__ import annotations

import sys

import torch
from _train_fixtures import TinyMLP, make_data, mse_loss

from kexue.train import Trainer, TrainerConfig


def build(output_dir: str) -> Trainer:
    """The run shared by the 2-process worker and the single-process reference in the test."""
    torch.manual_seed(0)
    model = TinyMLP(dropout=0.0, dtype=torch.float64)
    cfg = TrainerConfig(output_dir=output_dir, epochs=2, batch_size=8, learning_rate=5e-2, warmup_ratio=0.2,
                        max_grad_norm=0.5, log_every=1, seed=4, device="cpu", progress_bar=False)
    return Trainer(model, cfg, make_data(24, dtype=torch.float64), compute_loss=mse_loss)


if __name__ == "__main__":
    torch.set_num_threads(1)
    trainer = build(sys.argv[1])
    assert trainer.world_size == 2, trainer.world_size
    trainer.fit()
    torch.distributed.destroy_process_group()
