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
from kexue.errors import ConfigError

Model = Annotated[str, typer.Option("--model", "-m", help="minilm, a checkpoint or run folder, or 'scratch'.")]
Data = Annotated[str, typer.Option("--data", "-d", help="Dataset name under $KEXUE_DATA or a path.")]


@train_app.command("sts")
def train_sts_command(
    output: O.Output = Path("runs/sts"),
    model: Model = "minilm",
    data: Data = "stsb_en",
    loss: Annotated[str, typer.Option(help="cosent, softmax (Sentence-BERT) or mse (cosine MSE).")] = "cosent",
    pooling: Annotated[str, typer.Option(help="cls, pooler, last-avg or first-last-avg.")] = "last-avg",
    max_length: Annotated[int, typer.Option(help="Tokens per sentence.")] = 64,
    scale: Annotated[float, typer.Option(help="CoSENT's lambda.")] = 20.0,
    train_limit: Annotated[Optional[int], typer.Option(help="Use only the first N training pairs.")] = None,
    eval_limit: Annotated[Optional[int], typer.Option(help="Use only the first N pairs of each eval split.")] = None,
    extra_eval: Annotated[Optional[list[str]], typer.Option(help="Also evaluate on these datasets.")] = None,
    bucketing: Annotated[bool, typer.Option("--bucketing/--no-bucketing",
                                            help="Batch pairs of similar length (faster).")] = True,
    dev: D.DevFile = None, test: D.TestFile = None, split_ratio: D.SplitRatio = None,
    score_range: D.ScoreRangeOption = None,
    epochs: O.Epochs = 1, max_steps: O.MaxSteps = None, batch_size: O.BatchSize = 32, lr: O.LearningRate = 2e-5,
    warmup_ratio: O.WarmupRatio = 0.1, weight_decay: O.WeightDecay = 0.01, max_grad_norm: O.GradClip = 1.0,
    eval_every: O.EvalEvery = None, seed: O.Seed = 42, precision: O.Precision = "fp32", resume: O.Resume = False,
    progress: O.ProgressBar = True,
) -> None:
    """Fine-tune a sentence encoder on sentence pairs (CoSENT, https://kexue.fm/archives/8847)."""
    from kexue.tasks.sts import STSConfig, train_sts

    cfg = STSConfig(model=model, data=data, loss=loss, pooling=pooling, max_length=max_length, scale=scale,
                    train_limit=train_limit, eval_limit=eval_limit, extra_eval=tuple(extra_eval or ()),
                    length_bucketing=bucketing, dev=dev, test=test, split_ratio=split_ratio,
                    score_range=D.score_range_tuple(score_range))
    tcfg = O.trainer_config(output, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr,
                            warmup_ratio=warmup_ratio, weight_decay=weight_decay, max_grad_norm=max_grad_norm,
                            eval_every=eval_every, seed=seed, precision=precision, resume=resume, progress=progress,
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
    batch_size: Annotated[int, typer.Option(help="Sentences per forward pass.")] = 128,
    score_range: D.ScoreRangeOption = None,
) -> None:
    """Spearman x100 on dev and test (and accuracy/F1 at the dev threshold for binary data); a single --data file
    is scored once, as a whole."""
    from kexue.tasks.sts import eval_sts

    O.echo_json(eval_sts(model, data, eval_limit=eval_limit, batch_size=batch_size, pooling=pooling,
                         score_range=D.score_range_tuple(score_range), log=typer.echo))


@app.command("encode")
def encode_command(
    model: Model = "minilm",
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="Text lines (default stdin).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help=".npy file (default stdout).")] = None,
    batch_size: Annotated[int, typer.Option(help="Sentences per forward pass.")] = 64,
    normalize: Annotated[bool, typer.Option(help="L2-normalize the vectors.")] = False,
) -> None:
    """Encode text lines (one sentence per line) into a float32 .npy array [N, H]."""
    from kexue.embeddings import SentenceEncoder

    text = input.read_text(encoding="utf-8") if input else sys.stdin.read()
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            raise ConfigError(f"{input or '<stdin>'}:{i}: empty line; expected one sentence per line")
    vectors = SentenceEncoder.from_pretrained(model).encode(lines, batch_size=batch_size, normalize=normalize)
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
) -> None:
    """Export a trained encoder for another library (sentence-transformers)."""
    from kexue.embeddings import SentenceEncoder
    from kexue.embeddings.export import export_sentence_transformers

    if format != "sentence-transformers":
        raise ConfigError(f"--format: expected 'sentence-transformers', got {format!r}")
    export_sentence_transformers(SentenceEncoder.from_pretrained(model), out)
    typer.echo(f"wrote {out}")
