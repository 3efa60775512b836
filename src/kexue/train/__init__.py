"""kexue.train: the model-agnostic Trainer (loop, hooks, evaluation, keep-best, atomic checkpoints and exact
resume, progress bar, metrics.jsonl and plot, bf16 autocast, torchrun data parallelism).

Example::

    from kexue.train import Trainer, TrainerConfig, EMAHook

    config = TrainerConfig(output_dir="runs/demo", epochs=3, batch_size=32, learning_rate=2e-5,
                           warmup_ratio=0.1, metric_for_best="spearman")
    trainer = Trainer(model, config, train_examples, collate_fn=collate,
                      compute_loss=lambda model, batch: loss_fn(model(**batch), batch["labels"]),
                      evaluate=lambda model: {"spearman": dev_spearman(model)},
                      hooks=[EMAHook(0.999)])
    result = trainer.fit()
"""

from kexue.train.batching import BatchSampler, epoch_generator, random_batches, shard_batch
from kexue.train.checkpointing import (atomic_directory, default_save_model, find_latest_checkpoint, load_checkpoint,
                                      save_checkpoint)
from kexue.train.config import TrainerConfig
from kexue.train.ema import EMAHook
from kexue.train.hooks import Hook, HookList
from kexue.train.logging import MetricsLog, read_metrics
from kexue.train.optimization import default_optimizer, linear_warmup_decay, no_decay_parameter_names
from kexue.train.plot import plot_metrics
from kexue.train.run_folder import RunDirectory, prepare_run_dir, release_run_dir
from kexue.train.seed import capture_rng_state, restore_rng_state, seed_everything
from kexue.train.state import TrainerState
from kexue.train.trainer import Trainer

__all__ = [
    "BatchSampler", "EMAHook", "Hook", "HookList", "MetricsLog", "RunDirectory", "Trainer", "TrainerConfig",
    "TrainerState", "prepare_run_dir", "release_run_dir",
    "atomic_directory", "capture_rng_state", "default_optimizer", "default_save_model", "epoch_generator",
    "find_latest_checkpoint", "linear_warmup_decay", "load_checkpoint", "no_decay_parameter_names",
    "plot_metrics", "random_batches", "read_metrics", "restore_rng_state", "save_checkpoint", "seed_everything",
    "shard_batch",
]
