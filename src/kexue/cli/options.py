"""Options shared by every ``kexue train`` command, and their mapping onto :class:`TrainerConfig`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from kexue.train import TrainerConfig

Output = Annotated[Path, typer.Option("--output", "-o", help="Run folder (config, metrics, checkpoints, best/). A new "
                                                           "run needs it missing or empty; see --resume, --overwrite.")]
Epochs = Annotated[int, typer.Option(help="Passes over the training data.")]
MaxSteps = Annotated[Optional[int], typer.Option(help="Optimizer updates to run (overrides --epochs). One update is "
                                                       "one parameter change, for every --optimizer: with "
                                                       "--accumulation-steps k it consumes k batches.")]
BatchSize = Annotated[int, typer.Option(help="Examples per batch (sentence pairs for STS).")]
LearningRate = Annotated[float, typer.Option("--lr", help="Peak learning rate (AdamW).")]
WarmupRatio = Annotated[float, typer.Option(help="Fraction of steps of linear warm-up (then linear decay).")]
WeightDecay = Annotated[float, typer.Option(help="AdamW weight decay.")]
GradClip = Annotated[Optional[float], typer.Option("--max-grad-norm", help="Clip the gradient norm (0 = off).")]
EvalEvery = Annotated[Optional[int], typer.Option(help="Evaluate every N steps (always at epoch ends).")]
Seed = Annotated[int, typer.Option(help="The one seed for data order, init and dropout.")]
Precision = Annotated[str, typer.Option(help="fp32 or bf16 (autocast).")]
Resume = Annotated[bool, typer.Option("--resume/--no-resume", help="Continue the run in --output from its latest "
                                                                  "checkpoint, with the same training options (only "
                                                                  "--progress, --save-every, --keep-checkpoints and "
                                                                  "evaluation-only options may change). An empty or "
                                                                  "missing --output starts a new run.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Delete what --output holds and start a new run there.")]
DEFAULT_SAVE_EVERY = 100
SaveEvery = Annotated[Optional[int], typer.Option(
    help="Save a resumable checkpoint every N optimizer updates (also at every epoch end and on Ctrl-C). The default, "
         f"{DEFAULT_SAVE_EVERY}, is about 1 minute of all-MiniLM-L6-v2 STS training at batch 32 on 2 CPU cores "
         "(1.5-2.5 updates/s), so a killed run loses at most about a minute; such a checkpoint (weights + AdamW "
         "state, 273 MB) takes about 1 s to write.")]
KeepCheckpoints = Annotated[int, typer.Option(help="How many of the newest checkpoints to keep in checkpoints/.")]
ProgressBar = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]


def trainer_config(output: Path, *, epochs: int, max_steps: int | None, batch_size: int, lr: float,
                   warmup_ratio: float, weight_decay: float, max_grad_norm: float | None, eval_every: int | None,
                   seed: int, precision: str, resume: bool, progress: bool,
                   metric_for_best: str | None = None, save_every: int | None = DEFAULT_SAVE_EVERY,
                   keep_checkpoints: int = 1, overwrite: bool = False) -> TrainerConfig:
    """Build the TrainerConfig of a ``kexue train`` command (raises ConfigError naming a bad option)."""
    return TrainerConfig(output_dir=output, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                         learning_rate=lr, warmup_ratio=warmup_ratio, weight_decay=weight_decay,
                         max_grad_norm=max_grad_norm or None, eval_every=eval_every, seed=seed,
                         precision=precision, resume=resume, progress_bar=progress, metric_for_best=metric_for_best,
                         save_every=save_every, keep_checkpoints=keep_checkpoints, overwrite=overwrite)


def echo_json(obj: object) -> None:
    """Print an object as indented JSON on stdout."""
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False))
