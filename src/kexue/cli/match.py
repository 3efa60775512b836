"""Multi-task matching commands: ``train match`` (one cross-encoder on several pair tasks, optionally with
conditional LayerNorm on the task id, https://kexue.fm/archives/8337) and ``eval match`` (a trained model on the
Sohu 2021 test fragments or any binary pair file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kexue.cli import options as O
from kexue.cli.app import eval_app, train_app
from kexue.errors import ConfigError


@train_app.command("match")
def train_match_command(
    output: O.Output = Path("runs/match"),
    model: Annotated[str, typer.Option("--model", "-m", help="minilm, a checkpoint folder, or 'scratch'.")] = "minilm",
    tasks: Annotated[str, typer.Option(help="Comma-separated pair tasks, all trained together: afqmc, stsb_zh "
                                            "(score >= 3 is a match), simclue_sample. One task = a separate "
                                            "model.")] = "afqmc,stsb_zh,simclue_sample",
    conditional_ln: Annotated[bool, typer.Option("--conditional-ln/--no-conditional-ln", help="Condition every "
                                                 "LayerNorm on the task id (zero-initialised: the pretrained model "
                                                 "at step 0).")] = True,
    cond_dim: Annotated[int, typer.Option(help="Width of the task embedding.")] = 128,
    max_length: Annotated[int, typer.Option(help="Tokens per pair (both texts).")] = 128,
    dropout: Annotated[float, typer.Option(help="Dropout before the head.")] = 0.1,
    valid_size: Annotated[int, typer.Option(help="Pairs cut (by --seed) from train as the valid split of a task "
                                                 "without one (afqmc, simclue_sample).")] = 1000,
    train_limit: Annotated[Optional[int], typer.Option(help="First N training pairs of each task.")] = None,
    eval_limit: Annotated[Optional[int], typer.Option(help="First N pairs of each valid/test split.")] = None,
    epochs: O.Epochs = 1, max_steps: O.MaxSteps = None, batch_size: O.BatchSize = 16, lr: O.LearningRate = 2e-5,
    warmup_ratio: O.WarmupRatio = 0.0, weight_decay: O.WeightDecay = 0.01, max_grad_norm: O.GradClip = 1.0,
    eval_every: O.EvalEvery = None, seed: O.Seed = 42, precision: O.Precision = "fp32", resume: O.Resume = False,
    progress: O.ProgressBar = True, save_every: O.SaveEvery = O.DEFAULT_SAVE_EVERY,
    keep_checkpoints: O.KeepCheckpoints = 1, overwrite: O.Overwrite = False,
) -> None:
    """One cross-encoder on several pair tasks, task-conditioned LayerNorm or not (https://kexue.fm/archives/8337);
    selects best/ by the mean valid F1 and reports per-task accuracy and F1 on test."""
    from kexue.models.auto import check_max_length
    from kexue.tasks.common import SCRATCH
    from kexue.tasks.match import MatchConfig, train_match
    from kexue.tasks.match_data import parse_tasks

    if model != SCRATCH:
        check_max_length(model, max_length)
    cfg = MatchConfig(model=model, tasks=parse_tasks(tasks), conditional_ln=conditional_ln, cond_dim=cond_dim,
                      max_length=max_length, dropout=dropout, valid_size=valid_size, train_limit=train_limit,
                      eval_limit=eval_limit)
    tcfg = O.trainer_config(output, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr,
                            warmup_ratio=warmup_ratio, weight_decay=weight_decay, max_grad_norm=max_grad_norm,
                            eval_every=eval_every, seed=seed, precision=precision, resume=resume, progress=progress,
                            save_every=save_every, keep_checkpoints=keep_checkpoints, overwrite=overwrite,
                            metric_for_best="f1")
    results = train_match(cfg, tcfg, log=typer.echo)
    typer.echo(f"best model: {results['best_dir']}  (results: {output / 'results.json'})")


@eval_app.command("match")
def eval_match_command(
    model: Annotated[str, typer.Option("--model", "-m", help="A `train match` run folder or saved match model.")],
    data: Annotated[str, typer.Option("--data", "-d", help="A pair file: the Sohu 2021 fragments "
                                                           "($KEXUE_DATA/sohu2021_subset/...), or sentence1/"
                                                           "sentence2/label JSON lines or text_a<TAB>text_b<TAB>"
                                                           "label lines with 0/1 labels.")],
    task: Annotated[Optional[str], typer.Option(help="Which trained task's id to condition on (required for a "
                                                     "conditional model trained on several tasks).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Pairs per forward pass.")] = 64,
) -> None:
    """Accuracy and positive-class F1 of a `train match` model on a labelled pair file; on the Sohu 2021 graded
    fragments (labels 0/3/5) both criteria, A (label >= 3) and B (label 5), and their mean (the contest's score)."""
    from kexue.cli.options import echo_json
    from kexue.tasks.match_eval import evaluate_match_file

    if not Path(data).expanduser().is_file():
        raise ConfigError(f"--data {data}: no such file")
    echo_json(evaluate_match_file(model, data, task, batch_size))
