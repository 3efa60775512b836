"""Prompt-learning commands: ``train pet`` (https://kexue.fm/archives/7764), ``train ptuning``
(https://kexue.fm/archives/8295) and ``eval nsp-zeroshot`` (https://kexue.fm/archives/8671)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kexue.cli import options as O
from kexue.cli.app import eval_app, train_app
from kexue.errors import ConfigError

Model = Annotated[str, typer.Option("--model", "-m", help="A checkpoint (folder, run folder or alias) with a trained "
                                                          "MLM head (NSP head for nsp-zeroshot).")]
Data = Annotated[str, typer.Option("--data", "-d", help="fewclue/<task> (eprstmt, tnews, iflytek, csldcp, bustm, "
                                                        "ocnli, csl, cluewsc, chid), sentiment_zh, sst2, or a path.")]
Fold = Annotated[str, typer.Option(help="FewCLUE fold: 0-4 or few_all.")]
Mode = Annotated[str, typer.Option(help="zero-shot, few-shot, semi-supervised (+ MLM on unlabelled texts) or "
                                        "unsupervised (MLM on unlabelled texts only; PET).")]
Pattern = Annotated[Optional[str], typer.Option(help="Template with {text} / {text_a} / {text_b}, {mask} (one slot "
                                                     "per label-word part) and, for ptuning, {p} (trainable token). "
                                                     "Default: the task's preset.")]
VerbalizerOpt = Annotated[Optional[str], typer.Option(help="Label words: JSON {\"0\": [\"不\"], \"1\": [\"很\"]} or "
                                                           "0=不,1=很|好 (label index = class order).")]
Combine = Annotated[str, typer.Option(help="Several words per label: sum-prob (summed probabilities) or mean-log.")]
MaxLength = Annotated[int, typer.Option(help="Tokens per example; label words are never cut (an error instead).")]
MlmProbability = Annotated[float, typer.Option(help="Random masking of the other tokens (the auxiliary MLM loss); "
                                                    "0 = off.")]
Fraction = Annotated[Optional[float], typer.Option(help="Labelled share of the training file (sentiment_zh / sst2 "
                                                        "default 0.01, the article's 1%).")]
UnlabelledLimit = Annotated[Optional[int], typer.Option(help="Use at most N unlabelled texts.")]
EvalLimit = Annotated[Optional[int], typer.Option(help="Evaluate on a fixed random sample (seed 0) of N dev / test "
                                                         "examples (test_public files are sorted by label).")]
EvalBatch = Annotated[int, typer.Option(help="Examples per forward pass when scoring.")]


def _verbalizer(text: str | None) -> dict | None:
    from kexue.prompting import parse_verbalizer

    return None if text is None else parse_verbalizer(text)


def _trainer(output, **kw):
    return O.trainer_config(output, metric_for_best="accuracy", **kw)


@train_app.command("pet")
def train_pet_command(
    output: O.Output = Path("runs/pet"), model: Model = "minilm", data: Data = "sentiment_zh", fold: Fold = "0",
    mode: Mode = "few-shot", pattern: Pattern = None, verbalizer: VerbalizerOpt = None, combine: Combine = "sum-prob",
    max_length: MaxLength = 128, mlm_probability: MlmProbability = 0.15, labelled_fraction: Fraction = None,
    unlabelled_limit: UnlabelledLimit = None, eval_limit: EvalLimit = None, eval_batch_size: EvalBatch = 32,
    epochs: O.Epochs = 10, max_steps: O.MaxSteps = None, batch_size: O.BatchSize = 32, lr: O.LearningRate = 1e-5,
    warmup_ratio: O.WarmupRatio = 0.0, weight_decay: O.WeightDecay = 0.0, max_grad_norm: O.GradClip = None,
    eval_every: O.EvalEvery = None, seed: O.Seed = 42, precision: O.Precision = "fp32", resume: O.Resume = False,
    progress: O.ProgressBar = True, save_every: O.SaveEvery = O.DEFAULT_SAVE_EVERY,
    keep_checkpoints: O.KeepCheckpoints = 1, overwrite: O.Overwrite = False,
) -> None:
    """PET: a cloze pattern read by the MLM head through a verbalizer; zero-shot, few-shot, semi-supervised
    (https://kexue.fm/archives/7764; the article's settings: batch 32, lr 1e-5, best on valid)."""
    from kexue.tasks.pet import PETConfig, train_pet

    cfg = PETConfig(model=model, data=data, fold=fold, mode=mode, pattern=pattern, verbalizer=_verbalizer(verbalizer),
                    combine=combine, max_length=max_length, mlm_probability=mlm_probability,
                    labelled_fraction=labelled_fraction, unlabelled_limit=unlabelled_limit, eval_limit=eval_limit,
                    eval_batch_size=eval_batch_size)
    tcfg = _trainer(output, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr, warmup_ratio=warmup_ratio,
                    weight_decay=weight_decay, max_grad_norm=max_grad_norm, eval_every=eval_every, seed=seed,
                    precision=precision, resume=resume, progress=progress, save_every=save_every,
                    keep_checkpoints=keep_checkpoints, overwrite=overwrite)
    results = train_pet(cfg, tcfg, log=typer.echo)
    if results:
        O.echo_json(results)


@train_app.command("ptuning")
def train_ptuning_command(
    output: O.Output = Path("runs/ptuning"), model: Model = "minilm", data: Data = "sentiment_zh", fold: Fold = "0",
    mode: Annotated[str, typer.Option(help="few-shot or semi-supervised.")] = "few-shot",
    pattern: Pattern = None, verbalizer: VerbalizerOpt = None, combine: Combine = "sum-prob",
    num_prompts: Annotated[int, typer.Option(help="Trainable prompt tokens ([unused1..N], or new tokens).")] = 8,
    prompt_encoder: Annotated[str, typer.Option(help="none (the rows themselves), lstm (bi-LSTM + MLP) or mlp.")
                              ] = "none",
    train_backbone: Annotated[bool, typer.Option("--train-backbone/--frozen", help="Fine-tune the whole model "
                                                                                   "instead of the prompt only.")
                              ] = False,
    max_length: MaxLength = 128, mlm_probability: MlmProbability = 0.15, labelled_fraction: Fraction = None,
    unlabelled_limit: UnlabelledLimit = None, eval_limit: EvalLimit = None, eval_batch_size: EvalBatch = 32,
    epochs: O.Epochs = 10, max_steps: O.MaxSteps = None, batch_size: O.BatchSize = 32, lr: O.LearningRate = 6e-4,
    warmup_ratio: O.WarmupRatio = 0.0, weight_decay: O.WeightDecay = 0.0, max_grad_norm: O.GradClip = None,
    eval_every: O.EvalEvery = None, seed: O.Seed = 42, precision: O.Precision = "fp32", resume: O.Resume = False,
    progress: O.ProgressBar = True, save_every: O.SaveEvery = O.DEFAULT_SAVE_EVERY,
    keep_checkpoints: O.KeepCheckpoints = 1, overwrite: O.Overwrite = False,
) -> None:
    """P-tuning: trainable prompt tokens (default [CLS] u1..u4 [MASK] u5..u8 text), the model frozen
    (https://kexue.fm/archives/8295; the reference: Adam 6e-4, batch 32, best on valid)."""
    from kexue.tasks.ptuning import PTuningConfig, train_ptuning

    cfg = PTuningConfig(model=model, data=data, fold=fold, mode=mode, pattern=pattern,
                        verbalizer=_verbalizer(verbalizer), combine=combine, max_length=max_length,
                        mlm_probability=mlm_probability, labelled_fraction=labelled_fraction,
                        unlabelled_limit=unlabelled_limit, eval_limit=eval_limit, eval_batch_size=eval_batch_size,
                        num_prompts=num_prompts, prompt_encoder=prompt_encoder, train_backbone=train_backbone)
    tcfg = _trainer(output, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr, warmup_ratio=warmup_ratio,
                    weight_decay=weight_decay, max_grad_norm=max_grad_norm, eval_every=eval_every, seed=seed,
                    precision=precision, resume=resume, progress=progress, save_every=save_every,
                    keep_checkpoints=keep_checkpoints, overwrite=overwrite)
    results = train_ptuning(cfg, tcfg, log=typer.echo)
    if results:
        O.echo_json(results)


@eval_app.command("nsp-zeroshot")
def eval_nsp_zeroshot_command(
    model: Model, data: Data = "fewclue/tnews", fold: Fold = "0",
    split: Annotated[str, typer.Option(help="dev (the fold's) or test (test_public).")] = "test",
    prompt: Annotated[Optional[str], typer.Option(help="Label prompt with {label} (filled with each label's name), "
                                                       "e.g. '这是一篇{label}新闻'. Default: the task's preset.")
                      ] = None,
    labels: Annotated[Optional[str], typer.Option(help="Label names in class order, separated by '|' (default: the "
                                                       "dataset's).")] = None,
    position: Annotated[str, typer.Option(help="prefix ([CLS] prompt [SEP] text [SEP]) or suffix.")] = "prefix",
    max_length: MaxLength = 128, eval_limit: EvalLimit = None, eval_batch_size: EvalBatch = 32,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the result as JSON here.")] = None,
) -> None:
    """NSP-BERT zero-shot: every (label prompt, text) pair scored by the next-sentence head, IsNext = index 0
    (https://kexue.fm/archives/8671)."""
    from kexue.tasks.nsp_eval import evaluate_nsp_zeroshot

    if split not in ("dev", "test"):
        raise ConfigError(f"--split: expected dev or test, got {split!r}")
    result = evaluate_nsp_zeroshot(model, data, fold=fold, split=split, prompt=prompt,
                                   labels=None if labels is None else labels.split("|"), position=position,
                                   max_length=max_length, eval_limit=eval_limit, batch_size=eval_batch_size)
    O.echo_json(result)
    if output is not None:
        import json

        output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
