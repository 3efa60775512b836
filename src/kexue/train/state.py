"""What a training checkpoint holds, and how the Trainer's state is written into one and read back."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kexue.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from kexue.train.trainer import Trainer

CHECKPOINT_FORMAT = 1
MUST_MATCH_ON_RESUME = ("seed", "batch_size", "gradient_accumulation_steps", "drop_last")
"""Options that fix the data order and step boundaries (kept for reference: on resume every trainer option must match
except those in :data:`kexue.train.run_folder.CHANGEABLE_ON_RESUME`)."""


@dataclasses.dataclass
class TrainerState:
    """Progress counters stored in checkpoints.

    Attributes:
        global_step: optimizer steps done.
        epoch: index of the current epoch (0-based).
        batches_done: micro-batches of the current epoch already consumed.
        best_metric: best value of ``metric_for_best`` so far (``None`` before the first evaluation).
        best_step: step of that evaluation.
        best_metrics: all metrics of that evaluation.
        last_metrics: metrics of the latest evaluation.
        last_eval_step: step of the latest evaluation.
    """

    global_step: int = 0
    epoch: int = 0
    batches_done: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    best_metrics: dict[str, float] | None = None
    last_metrics: dict[str, float] | None = None
    last_eval_step: int | None = None


def build_checkpoint(trainer: Trainer, per_rank: list[dict[str, Any]]) -> dict[str, Any]:
    """The full training state of ``trainer``: model, optimizer, scheduler, counters, hook states, each rank's
    RNG state and logging window (``per_rank``), the process count and the configuration."""
    return {"format": CHECKPOINT_FORMAT, "model": trainer.model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(), "scheduler": trainer.scheduler.state_dict(),
            "trainer_state": dataclasses.asdict(trainer.state), "hooks": trainer.hooks.state_dict(),
            "per_rank": per_rank, "world_size": trainer.world_size, "config": trainer.config.to_dict()}


def restore_checkpoint(trainer: Trainer, ckpt: dict[str, Any], path: Path) -> dict[str, Any]:
    """Load ``ckpt`` (read from ``path``) into ``trainer``'s model, optimizer, scheduler, state and hooks.

    Returns:
        this rank's entry of ``ckpt["per_rank"]`` (RNG state and logging window), for the caller to apply.

    Raises:
        ConfigError: if the process count differs, or any trainer option that changes the training (naming each
            as ``--flag: old -> new``).
        CheckpointError: if the format is unknown or the model state does not fit the model.
    """
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {ckpt.get('format')!r}, expected {CHECKPOINT_FORMAT}")
    if ckpt["world_size"] != trainer.world_size:
        raise ConfigError(f"resume: checkpoint {path} was written by {ckpt['world_size']} processes, "
                          f"this run has {trainer.world_size}")
    from kexue.train.run_folder import compare_options

    changed = compare_options({"trainer": ckpt["config"]}, {"trainer": trainer.config.to_dict()})
    if changed:
        raise ConfigError(f"--resume: checkpoint {path} was written with other training options: "
                          + "; ".join(changed) + "; resuming with them would not continue the same run")
    own = trainer.model.state_dict()
    mismatched = {k: (tuple(own[k].shape), tuple(v.shape)) for k, v in ckpt["model"].items()
                  if k in own and own[k].shape != v.shape}
    missing, unexpected = set(own) - set(ckpt["model"]), set(ckpt["model"]) - set(own)
    if missing or unexpected or mismatched:
        raise CheckpointError(f"model state in {path} does not fit the model", missing=missing,
                              unexpected=unexpected, mismatched=mismatched)
    trainer.model.load_state_dict(ckpt["model"])
    trainer.optimizer.load_state_dict(ckpt["optimizer"])
    trainer.scheduler.load_state_dict(ckpt["scheduler"])
    trainer.state = TrainerState(**ckpt["trainer_state"])
    trainer.hooks.load_state_dict(ckpt["hooks"])
    return ckpt["per_rank"][trainer.rank]
