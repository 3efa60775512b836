"""Sentence-embedding commands: ``train sts``, ``eval sts``, ``encode``, ``similarity``, ``export``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from kexue.cli import data_options as D
from kexue.cli import options as O
from kexue.cli.app import app, eval_app, train_app
from kexue.cli.inputs import read_text_lines
from kexue.errors import ConfigError

Model = Annotated[str, typer.Option("--model", "-m", help="minilm, a checkpoint folder, a run folder (its best/), "
                                                          "or 'scratch' (train only).")]
Data = Annotated[str, typer.Option("--data", "-d", help="Dataset name under $KEXUE_DATA or a path.")]
EncodeBatch = Annotated[int, typer.Option(min=1, help="Sentences per forward pass.")]
EncodeMaxLength = Annotated[Optional[int], typer.Option(min=2, help="Tokens per sentence (default: the model's "
                                                                    "saved value, else 64).")]


def check_extra_eval(names: list[str] | None) -> tuple[str, ...]:
    """The ``--extra-eval`` names, each checked to be a sentence-pair dataset name under $KEXUE_DATA or an existing
    path, before any work.

    Raises:
        ConfigError: an unknown name (listing the known sentence-pair datasets) or a dataset of another task.
    """
    from kexue.data.registry import DATASETS
    from kexue.tasks.sts import known_datasets

    for name in names or ():
        if name in DATASETS:
            if DATASETS[name].task != "pairs":
                raise ConfigError(f"--extra-eval {name}: a {DATASETS[name].task} dataset, not sentence pairs; "
                                  f"known sentence-pair datasets: {', '.join(known_datasets())}")
        elif not Path(name).expanduser().exists():
            raise ConfigError(f"--extra-eval {name}: neither a dataset name under $KEXUE_DATA nor an existing path; "
                              f"known sentence-pair datasets: {', '.join(known_datasets())}")
    return tuple(names or ())


def null_non_finite(results: dict) -> dict:
    """``{split: {metric: value}}`` with NaN/inf values as ``None`` (JSON has no NaN), each one reported on stderr
    with the reason."""
    import math

    out: dict = {}
    for split, metrics in results.items():
        out[split] = {}
        for name, value in metrics.items():
            if isinstance(value, float) and not math.isfinite(value):
                typer.echo(f"note: {split} {name} is undefined ({value}: the cosines or the gold scores of the "
                           "split are constant); written as null", err=True)
                value = None
            out[split][name] = value
    return out


@train_app.command("sts")
def train_sts_command(
    output: O.Output = Path("runs/sts"),
    model: Model = "minilm",
    data: Data = "stsb_en",
    loss: Annotated[str, typer.Option(help="cosent, softmax (Sentence-BERT) or mse (cosine MSE).")] = "cosent",
    pooling: Annotated[str, typer.Option(help="cls, pooler, last-avg or first-last-avg.")] = "last-avg",
    max_length: Annotated[int, typer.Option(help="Tokens per sentence.")] = 64,
    scale: Annotated[float, typer.Option(help="CoSENT's lambda (5: best on STS-B dev with MiniLM; the article "
                                               "uses 20).")] = 5.0,
    train_limit: Annotated[Optional[int], typer.Option(help="Use only the first N training pairs.")] = None,
    eval_limit: Annotated[Optional[int], typer.Option(help="Use only the first N pairs of each eval split.")] = None,
    extra_eval: Annotated[Optional[list[str]], typer.Option(help="Also evaluate on these datasets.")] = None,
    bucketing: Annotated[bool, typer.Option("--bucketing/--no-bucketing",
                                            help="Batch pairs of similar length (faster).")] = True,
    dev: D.DevFile = None, test: D.TestFile = None, split_ratio: D.SplitRatio = None,
    score_range: D.ScoreRangeOption = None,
    # lr 5e-6: the best mean dev Spearman of the sweep in docs/RESULTS.md (sts-defaults); 2e-5 fell below zero-shot
    epochs: O.Epochs = 1, max_steps: O.MaxSteps = None, batch_size: O.BatchSize = 32, lr: O.LearningRate = 5e-6,
    warmup_ratio: O.WarmupRatio = 0.1, weight_decay: O.WeightDecay = 0.01, max_grad_norm: O.GradClip = 1.0,
    eval_every: O.EvalEvery = None, seed: O.Seed = 42, precision: O.Precision = "fp32", resume: O.Resume = False,
    progress: O.ProgressBar = True, save_every: O.SaveEvery = O.DEFAULT_SAVE_EVERY,
    keep_checkpoints: O.KeepCheckpoints = 1, overwrite: O.Overwrite = False,
) -> None:
    """Fine-tune a sentence encoder on sentence pairs (CoSENT, https://kexue.fm/archives/8847)."""
    from kexue.models.auto import check_max_length
    from kexue.tasks.common import SCRATCH
    from kexue.tasks.sts import STSConfig, train_sts

    if model != SCRATCH:
        check_max_length(model, max_length)
    cfg = STSConfig(model=model, data=data, loss=loss, pooling=pooling, max_length=max_length, scale=scale,
                    train_limit=train_limit, eval_limit=eval_limit, extra_eval=check_extra_eval(extra_eval),
                    length_bucketing=bucketing, dev=dev, test=test, split_ratio=split_ratio,
                    score_range=D.score_range_tuple(score_range))
    tcfg = O.trainer_config(output, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr,
                            warmup_ratio=warmup_ratio, weight_decay=weight_decay, max_grad_norm=max_grad_norm,
                            eval_every=eval_every, seed=seed, precision=precision, resume=resume, progress=progress,
                            save_every=save_every, keep_checkpoints=keep_checkpoints, overwrite=overwrite,
                            metric_for_best="spearman")
    results = train_sts(cfg, tcfg, log=typer.echo)
    if results:  # empty on the non-zero ranks of a torchrun launch
        typer.echo(f"best model: {results['best_dir']}  (results: {output / 'results.json'})")


@eval_app.command("sts")
def eval_sts_command(
    model: Model = "minilm",
    data: Data = "stsb_en",
    pooling: Annotated[Optional[str], typer.Option(help="Override the saved pooling.")] = None,
    eval_limit: Annotated[Optional[int], typer.Option(help="Use only the first N pairs per split.")] = None,
    batch_size: EncodeBatch = 128,
    score_range: D.ScoreRangeOption = None,
    whitening: Annotated[Optional[str], typer.Option(help="none, full or K (top-K components) BERT-whitening; unset: "
                                                          "the whitening saved with the model, if any.")] = None,
    fit_on: Annotated[Optional[str], typer.Option(help="What --whitening full|K is fitted on: task (the evaluated "
                                                       "data itself, transductive), train, or a file of sentences.")
                      ] = None,
) -> None:
    """Spearman x100 on dev and test (and accuracy/F1 at the dev threshold for binary data); a single --data file
    is scored once, as a whole. A metric that is undefined (constant cosines or scores) is written as null, with
    the reason on stderr."""
    from kexue.tasks.sts import eval_sts

    results = eval_sts(model, data, eval_limit=eval_limit, batch_size=batch_size, pooling=pooling,
                       score_range=D.score_range_tuple(score_range), log=typer.echo, whitening=whitening,
                       fit_on=fit_on)
    O.echo_json(null_non_finite(results))


@app.command("encode")
def encode_command(
    model: Model = "minilm",
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="Text lines (default stdin).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help=".npy file (default stdout).")] = None,
    batch_size: EncodeBatch = 64,
    max_length: EncodeMaxLength = None,
    normalize: Annotated[bool, typer.Option(help="L2-normalize the vectors.")] = False,
    precision: Annotated[str, typer.Option(help="fp32 (exact) or bf16 (weights cast to bfloat16 once; faster on "
                                                "CPUs with bf16 units, cosine >= 0.999 to fp32).")] = "fp32",
) -> None:
    """Encode text lines (one sentence per line; UTF-8; blank lines only at the end) into a float32 .npy
    array [N, H]."""
    import torch

    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"--precision: expected fp32 or bf16, got {precision!r}")
    from kexue.embeddings import SentenceEncoder
    from kexue.models.auto import check_max_length

    if max_length is not None:
        check_max_length(model, max_length)
    lines = read_text_lines(input)
    encoder = SentenceEncoder.from_pretrained(model, max_length=max_length)
    if precision == "bf16":
        encoder.to(torch.bfloat16)
    vectors = encoder.encode(lines, batch_size=batch_size, normalize=normalize)
    if output is None:
        np.save(sys.stdout.buffer, vectors)
    else:
        np.save(output, vectors)


@app.command("similarity")
def similarity_command(text_a: str, text_b: str, model: Model = "minilm") -> None:
    """Cosine similarity of two sentences."""
    from kexue.embeddings import SentenceEncoder

    vecs = SentenceEncoder.from_pretrained(model).encode([text_a, text_b], normalize=True)
    typer.echo(f"{float(vecs[0] @ vecs[1]):.6f}")


@app.command("export")
def export_command(
    model: Annotated[str, typer.Argument(help="Run folder or checkpoint to export.")],
    out: Annotated[Path, typer.Argument(help="Folder to write.")],
    format: Annotated[str, typer.Option("--format", help="sentence-transformers")] = "sentence-transformers",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it is not empty.")] = False,
) -> None:
    """Export a trained encoder for another library (sentence-transformers); a non-empty OUT is refused unless
    --overwrite."""
    from kexue.embeddings import SentenceEncoder
    from kexue.embeddings.export import check_export_target, export_sentence_transformers

    if format != "sentence-transformers":
        raise ConfigError(f"--format: expected 'sentence-transformers', got {format!r}")
    check_export_target(out, overwrite)  # before loading the model
    export_sentence_transformers(SentenceEncoder.from_pretrained(model), out, overwrite=overwrite)
    typer.echo(f"wrote {out}")
