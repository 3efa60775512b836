"""The Trainer's configuration: one dataclass, validated on construction, serialisable to a run's config.json."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kexue.errors import ConfigError

PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainerConfig:
    """Options of :class:`kexue.train.Trainer`.

    Args:
        output_dir: run folder (config.json, metrics.jsonl, plot.png, ``checkpoints/``, ``best/``, ``last/``).
        epochs: passes over the training data (used when ``max_steps`` is ``None``).
        max_steps: optimizer steps to run; ``None`` = ``epochs`` full epochs. When set, epochs are repeated
            (new data order each) until that many steps are done.
        batch_size: global batch size of one forward/backward (a micro-batch); with ``world_size`` processes
            each rank gets a contiguous ``batch_size / world_size`` slice of every global batch.
        gradient_accumulation_steps: micro-batches per optimizer step (classic explicit accumulation: losses
            are divided by the number of micro-batches of the step and gradients summed).
        learning_rate: peak learning rate of the linear warm-up / linear decay schedule.
        weight_decay: decoupled (AdamW) weight decay; biases and normalisation weights are exempt in the
            default optimizer.
        adam_betas, adam_epsilon: AdamW's (β1, β2) and ε for the default optimizer.
        warmup_ratio: fraction of the total optimizer steps spent warming up linearly from 0 to
            ``learning_rate``; afterwards the rate decays linearly to 0 at the last step.
        max_grad_norm: clip the global L2 norm of the gradients to this value; ``None`` = no clipping.
        eval_every: evaluate every this many optimizer steps; ``None`` = only at epoch ends (evaluation also
            always runs at every epoch end and after the last step).
        save_every: write a full training checkpoint every this many optimizer steps (one is also written at
            every epoch end and at the end of training); ``None`` = only those.
        keep_checkpoints: how many training checkpoints to keep in ``checkpoints/`` (the newest ones).
        metric_for_best: name of the ``evaluate`` metric that selects ``best/`` (e.g. ``"spearman"``);
            ``None`` = no best-model tracking.
        greater_is_better: whether a larger ``metric_for_best`` is better.
        seed: the one seed for Python, NumPy and torch (rank ``r`` of a multi-process run uses ``seed + r``
            for its dropout stream), and for the data order (shared by all ranks).
        precision: ``"fp32"`` or ``"bf16"`` (``torch.autocast`` to bfloat16 for forward passes, training and
            evaluation; parameters, gradients and optimizer state stay float32).
        log_every: write a training event to metrics.jsonl every this many optimizer steps.
        drop_last: drop the last, incomplete global batch of each epoch.
        num_workers: DataLoader worker processes (0 = load in the main process).
        device: torch device string; ``None`` = ``"cuda:<local_rank>"`` if CUDA is available, else ``"cpu"``.
        resume: continue the run in ``output_dir`` from its latest checkpoint (see
            :func:`kexue.train.prepare_run_dir`: an empty or missing folder starts a new run and says so; a non-empty
            folder without a checkpoint, or options that would change the training, are refused).
        overwrite: delete what ``output_dir`` holds and start a new run there (said in the log); without it (and
            without ``resume``) a non-empty ``output_dir`` is refused.
        find_unused_parameters: passed to ``DistributedDataParallel``; needed when some trainable parameters
            get no gradient in a step (e.g. an unused pooler), costs an extra graph traversal.
        progress_bar: show a tqdm progress bar (rank 0 only).

    Raises:
        ConfigError: naming the option, for any invalid value.
    """

    output_dir: str | Path
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 32
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_epsilon: float = 1e-8
    warmup_ratio: float = 0.0
    max_grad_norm: float | None = 1.0
    eval_every: int | None = None
    save_every: int | None = None
    keep_checkpoints: int = 1
    metric_for_best: str | None = None
    greater_is_better: bool = True
    seed: int = 42
    precision: str = "fp32"
    log_every: int = 10
    drop_last: bool = False
    num_workers: int = 0
    device: str | None = None
    resume: bool = False
    overwrite: bool = False
    find_unused_parameters: bool = False
    progress_bar: bool = True

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        self.adam_betas = tuple(self.adam_betas)  # type: ignore[assignment]
        if self.precision not in PRECISIONS:
            raise ConfigError(f"{option_name('precision')}: expected one of {PRECISIONS}, got {self.precision!r}")
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        _positive_int("gradient_accumulation_steps", self.gradient_accumulation_steps)
        _positive_int("log_every", self.log_every)
        _positive_int("keep_checkpoints", self.keep_checkpoints)
        for name in ("max_steps", "eval_every", "save_every"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ConfigError(f"{option_name('num_workers')}: expected an integer >= 0, got {self.num_workers!r}")
        if not (0.0 <= self.warmup_ratio < 1.0):
            raise ConfigError(f"{option_name('warmup_ratio')}: expected a value in [0, 1), got {self.warmup_ratio!r}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ConfigError(f"{option_name('learning_rate')}: expected a finite value > 0, "
                              f"got {self.learning_rate!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"{option_name('weight_decay')}: expected a finite value >= 0, got {self.weight_decay!r}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ConfigError(f"{option_name('max_grad_norm')}: expected a value > 0 or None, "
                              f"got {self.max_grad_norm!r}")
        if len(self.adam_betas) != 2 or not all(0.0 <= b < 1.0 for b in self.adam_betas):
            raise ConfigError(f"{option_name('adam_betas')}: expected two values in [0, 1), got {self.adam_betas!r}")

    def to_dict(self) -> dict[str, Any]:
        """All options as JSON-serialisable values (``output_dir`` as a string), for the run's config.json."""
        out = dataclasses.asdict(self)
        out["output_dir"] = str(self.output_dir)
        out["adam_betas"] = list(self.adam_betas)
        return out


#: The ``kexue train`` flag of each TrainerConfig field that the command line sets (kexue.cli.options).
FLAGS = {"output_dir": "--output", "epochs": "--epochs", "max_steps": "--max-steps", "batch_size": "--batch-size",
         "gradient_accumulation_steps": "--accumulation-steps", "learning_rate": "--lr",
         "weight_decay": "--weight-decay", "warmup_ratio": "--warmup-ratio", "max_grad_norm": "--max-grad-norm",
         "eval_every": "--eval-every", "save_every": "--save-every", "keep_checkpoints": "--keep-checkpoints",
         "seed": "--seed", "precision": "--precision", "resume": "--resume", "progress_bar": "--progress",
         "overwrite": "--overwrite"}


def option_name(field: str) -> str:
    """How a message names a TrainerConfig field: its command-line flag and the field, e.g.
    ``"--lr (learning_rate)"``; fields without a flag as ``"TrainerConfig.log_every"``."""
    return f"{FLAGS[field]} ({field})" if field in FLAGS else f"TrainerConfig.{field}"


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{option_name(name)}: expected an integer >= 1, got {value!r}")
