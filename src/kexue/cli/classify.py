"""Classification commands: ``train classify`` (with every training technique as an option) and
``predict classify`` (text lines in, JSON lines out)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from kexue.cli import data_options as D
from kexue.cli import options as O
from kexue.cli.app import predict_app, train_app
from kexue.errors import ConfigError

Model = Annotated[str, typer.Option("--model", "-m", help="minilm, a checkpoint folder, or 'scratch'.")]
Data = Annotated[str, typer.Option("--data", "-d", help="sst2, sentiment_zh, afqmc, or a path.")]


def _multipliers(items: list[str] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items or []:
        pattern, sep, value = item.rpartition("=")
        try:
            out[pattern] = float(value)
        except ValueError:
            sep = ""
        if not sep or not pattern:
            raise ConfigError(f"--lr-multiplier: expected PATTERN=FACTOR (e.g. classifier=10), got {item!r}")
    return out


@train_app.command("classify")
def train_classify_command(
    output: O.Output = Path("runs/classify"),
    model: Model = "minilm",
    data: Data = "sst2",
    pooling: Annotated[str, typer.Option(help="cls or mean.")] = "cls",
    max_length: Annotated[int, typer.Option(help="Tokens per example (both texts of a pair).")] = 128,
    train_limit: Annotated[Optional[int], typer.Option(help="Use only the first N training examples.")] = None,
    eval_limit: Annotated[Optional[int], typer.Option(help="Use only the first N examples per eval split.")] = None,
    optimizer: Annotated[str, typer.Option(help="adamw, accum-adamw, accum-sgdm (accumulation inside the "
                                                "momentum, kexue.fm/archives/8634), child-tuning-f, child-tuning-d."
                                           )] = "adamw",
    accumulation_steps: Annotated[int, typer.Option(help="Micro-batches per update (classic for adamw, "
                                                         "in-momentum for accum-*).")] = 1,
    child_tuning: Annotated[str, typer.Option(help="none, F or D (kexue.fm/archives/8764).")] = "none",
    reserve_p: Annotated[float, typer.Option(help="ChildTuning's kept fraction p.")] = 0.3,
    child_tuning_apply_to: Annotated[str, typer.Option(help="grad (paper) or update (Su's variant).")] = "grad",
    fisher_batches: Annotated[Optional[int], typer.Option(help="Batches of ChildTuning-D's Fisher pass.")] = None,
    adversarial: Annotated[str, typer.Option(help="none or fgm (kexue.fm/archives/7234).")] = "none",
    epsilon: Annotated[float, typer.Option(help="FGM's epsilon: the Frobenius norm of the perturbation of the "
                                                 "embedding matrix, shared by the batch's distinct tokens (0.1 "
                                                 "chosen on sst2; docs/RESULTS.md fgm-sweep).")] = 0.1,
    fgm_loss: Annotated[str, typer.Option(help="adv_only (Su) or clean_plus_adv.")] = "adv_only",
    gradient_penalty: Annotated[Optional[float], typer.Option(help="Epsilon of the gradient penalty.")] = None,
    gradient_penalty_kind: Annotated[str, typer.Option(help="input (embedding outputs) or parameter.")] = "input",
    ema: Annotated[Optional[float], typer.Option(help="EMA decay of the weights (evaluated and saved).")] = None,
    lora_rank: Annotated[Optional[int], typer.Option(help="LoRA rank (kexue.fm/archives/9590).")] = None,
    lora_alpha: Annotated[Optional[float], typer.Option(help="LoRA alpha (default 2*rank).")] = None,
    lora_target: Annotated[Optional[list[str]], typer.Option(help="LoRA target modules.")] = None,
    lora_variant: Annotated[Optional[str], typer.Option(help="The LoRA article's own forms at --lora-rank "
                                                             "(kexue.fm/archives/9590): zero-b, symmetric, additive "
                                                             "(modules), fixed-projection, random-projection, "
                                                             "additive-projection (optimizer). Default: peft LoRA."
                                                        )] = None,
    class_thresholds: Annotated[bool, typer.Option("--class-thresholds/--no-class-thresholds",
                                                   help="Search per-class thresholds (and P(y=1)'s for two "
                                                        "classes) on dev, report test at them "
                                                        "(kexue.fm/archives/8860).")] = False,
    ladder_side: Annotated[bool, typer.Option("--ladder-side/--no-ladder-side",
                                              help="Ladder Side-Tuning (kexue.fm/archives/9138).")] = False,
    side_hidden: Annotated[int, typer.Option(help="Ladder side-network width.")] = 128,
    side_layers: Annotated[int, typer.Option(help="Ladder side-network blocks.")] = 4,
    dev: D.DevFile = None, test: D.TestFile = None, split_ratio: D.SplitRatio = None, num_labels: D.NumLabels = None,
    lr_multiplier: Annotated[Optional[list[str]], typer.Option(help="PATTERN=FACTOR learning-rate multiplier "
                                                                    "(kexue.fm/archives/7196).")] = None,
    head_lr: Annotated[Optional[float], typer.Option(help="Peak learning rate of the classifier layer (absolute; "
                                                          "the encoder stays at --lr). Default: --lr.")] = None,
    epochs: O.Epochs = 1, max_steps: O.MaxSteps = None, batch_size: O.BatchSize = 32, lr: O.LearningRate = 5e-5,
    warmup_ratio: O.WarmupRatio = 0.1, weight_decay: O.WeightDecay = 0.01, max_grad_norm: O.GradClip = 1.0,
    eval_every: O.EvalEvery = None, seed: O.Seed = 42, precision: O.Precision = "fp32", resume: O.Resume = False,
    progress: O.ProgressBar = True, save_every: O.SaveEvery = O.DEFAULT_SAVE_EVERY,
    keep_checkpoints: O.KeepCheckpoints = 1, overwrite: O.Overwrite = False,
) -> None:
    """Fine-tune a text (pair) classifier, with the training techniques of kexue.fm as switches."""
    from kexue.models.auto import check_max_length
    from kexue.tasks.classification import ClassifyConfig, train_classify
    from kexue.tasks.common import SCRATCH

    if model != SCRATCH:
        check_max_length(model, max_length)
    cfg = ClassifyConfig(model=model, data=data, pooling=pooling, max_length=max_length, train_limit=train_limit,
                         eval_limit=eval_limit, optimizer=optimizer, accumulation_steps=accumulation_steps,
                         child_tuning=child_tuning, reserve_p=reserve_p, child_tuning_apply_to=child_tuning_apply_to,
                         fisher_batches=fisher_batches, adversarial=adversarial, epsilon=epsilon,
                         fgm_loss_mode=fgm_loss, gradient_penalty=gradient_penalty,
                         gradient_penalty_kind=gradient_penalty_kind, ema=ema, lora_rank=lora_rank,
                         lora_alpha=lora_alpha, lora_targets=tuple(lora_target or ("qkv", "attention.output")),
                         ladder_side=ladder_side, side_hidden=side_hidden, side_layers=side_layers,
                         dev=dev, test=test, split_ratio=split_ratio, num_labels=num_labels,
                         lr_multipliers=_multipliers(lr_multiplier), head_lr=head_lr,
                         lora_variant=lora_variant, class_thresholds=class_thresholds)
    tcfg = O.trainer_config(output, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr,
                            warmup_ratio=warmup_ratio, weight_decay=weight_decay, max_grad_norm=max_grad_norm,
                            eval_every=eval_every, seed=seed, precision=precision, resume=resume, progress=progress,
                            save_every=save_every, keep_checkpoints=keep_checkpoints, overwrite=overwrite,
                            metric_for_best="accuracy")
    results = train_classify(cfg, tcfg, log=typer.echo)
    typer.echo(f"best model: {results['best_dir']}  (results: {output / 'results.json'})")


@predict_app.command("classify")
def predict_classify_command(
    model: Annotated[str, typer.Option("--model", "-m", help="Run folder (uses best/) or saved classifier.")],
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="Text lines (default stdin); pair "
                                                                        "models: text_a<TAB>text_b.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Examples per forward pass.")] = 64,
    class_thresholds: Annotated[bool, typer.Option("--class-thresholds/--no-class-thresholds",
                                                   help="Label = argmax p_c*t_c with the thresholds searched on "
                                                        "dev at training (--class-thresholds).")] = False,
) -> None:
    """Classify text lines (UTF-8; blank lines only at the end); one JSON object per line:
    {"label": id, "probs": [...]}."""
    from kexue.cli.inputs import read_text_lines
    from kexue.tasks.classification import predict_classify

    lines = read_text_lines(input)
    for row in predict_classify(model, lines, batch_size=batch_size, where=str(input or "<stdin>"),
                                class_thresholds=class_thresholds):
        typer.echo(json.dumps(row))
