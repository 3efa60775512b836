"""Unsupervised sentence-embedding commands: ``train simcse`` (https://kexue.fm/archives/8348) and ``whiten``
(BERT-whitening fitted and saved with the model, https://kexue.fm/archives/8321)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kexue.cli import options as O
from kexue.cli.app import app, train_app
from kexue.errors import ConfigError

Model = Annotated[str, typer.Option("--model", "-m", help="minilm, a checkpoint folder, a run folder (its best/), "
                                                          "or 'scratch'.")]


@train_app.command("simcse")
def train_simcse_command(
    output: O.Output = Path("runs/simcse"),
    model: Model = "minilm",
    data: Annotated[str, typer.Option("--data", "-d", help="Raw sentences: a text file (one per line), a name under "
                                                           "$KEXUE_DATA (wiki1m_en_prefix) or a pair dataset (both "
                                                           "sides of its train split, labels unread).")
                    ] = "wiki1m_en_prefix",
    eval_data: Annotated[Optional[str], typer.Option(help="STS dataset evaluated during training (its dev split "
                                                          "selects best/); default --data if it is a pair dataset, "
                                                          "else stsb_en.")] = None,
    pooling: Annotated[str, typer.Option(help="cls, pooler, last-avg or first-last-avg.")] = "cls",
    max_length: Annotated[int, typer.Option(help="Tokens per sentence.")] = 64,
    dropout: Annotated[Optional[float], typer.Option(help="Hidden and attention dropout while training (the "
                                                          "augmentation; default the model's own; the Chinese post "
                                                          "uses 0.3).")] = None,
    negatives: Annotated[str, typer.Option(help="cross-view (the paper, sentence-transformers) or with-same-view "
                                                "(Su's code: the same view of other sentences too).")] = "cross-view",
    scale: Annotated[float, typer.Option(help="1/temperature of the InfoNCE.")] = 20.0,
    train_limit: Annotated[Optional[int], typer.Option(help="Use only N distinct sentences (after a seeded "
                                                            "shuffle).")] = None,
    eval_limit: Annotated[Optional[int], typer.Option(help="Use only the first N pairs of each eval split.")] = None,
    epochs: O.Epochs = 1, max_steps: O.MaxSteps = None, batch_size: O.BatchSize = 64, lr: O.LearningRate = 1e-5,
    warmup_ratio: O.WarmupRatio = 0.0, weight_decay: O.WeightDecay = 0.0, max_grad_norm: O.GradClip = 1.0,
    eval_every: O.EvalEvery = None, seed: O.Seed = 42, precision: O.Precision = "fp32", resume: O.Resume = False,
    progress: O.ProgressBar = True, save_every: O.SaveEvery = O.DEFAULT_SAVE_EVERY,
    keep_checkpoints: O.KeepCheckpoints = 1, overwrite: O.Overwrite = False,
) -> None:
    """Unsupervised SimCSE on raw sentences: two dropout passes, in-batch InfoNCE (https://kexue.fm/archives/8348);
    defaults are the Chinese post's (batch 64, lr 1e-5, 1 epoch)."""
    from kexue.models.auto import check_max_length
    from kexue.tasks.common import SCRATCH
    from kexue.tasks.simcse import SimCSEConfig, train_simcse

    if model != SCRATCH:
        check_max_length(model, max_length)
    if batch_size < 2:
        raise ConfigError(f"--batch-size: SimCSE needs at least 2 sentences per batch (in-batch negatives), got "
                          f"{batch_size}")
    cfg = SimCSEConfig(model=model, data=data, eval_data=eval_data, pooling=pooling, max_length=max_length,
                       dropout=dropout, negatives=negatives, scale=scale, train_limit=train_limit,
                       eval_limit=eval_limit)
    tcfg = O.trainer_config(output, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr,
                            warmup_ratio=warmup_ratio, weight_decay=weight_decay, max_grad_norm=max_grad_norm,
                            eval_every=eval_every, seed=seed, precision=precision, resume=resume, progress=progress,
                            save_every=save_every, keep_checkpoints=keep_checkpoints, overwrite=overwrite,
                            metric_for_best="spearman")
    results = train_simcse(cfg, tcfg, log=typer.echo)
    if results:
        typer.echo(f"best model: {results['best_dir']}  (results: {output / 'results.json'})")


@app.command("whiten")
def whiten_command(
    model: Annotated[str, typer.Argument(help="Run folder, checkpoint or alias whose vectors are whitened.")],
    out: Annotated[Path, typer.Argument(help="Folder to write: the model plus whitening.safetensors.")],
    fit_on: Annotated[str, typer.Option(help="What to fit on: task (all sentences of --data, transductive), train "
                                             "(--data's train split), or a file of sentences.")],
    data: Annotated[Optional[str], typer.Option("--data", "-d", help="The dataset for --fit-on task|train.")] = None,
    whitening: Annotated[str, typer.Option(help="full or K (keep the top-K components).")] = "full",
    eps: Annotated[float, typer.Option(help="Added to the eigenvalues (0 = refuse a rank-deficient fit).")] = 0.0,
    batch_size: Annotated[int, typer.Option(min=1, help="Sentences per forward pass.")] = 64,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it is not empty.")] = False,
) -> None:
    """Fit BERT-whitening on named sentences and save it with the model; `encode`, `similarity`, `eval sts` and
    `export` then apply it (https://kexue.fm/archives/8321)."""
    import shutil

    from kexue.embeddings import SentenceEncoder
    from kexue.embeddings.export import check_export_target
    from kexue.embeddings.whitening import parse_whitening
    from kexue.tasks.whitening import choose_whitening

    if parse_whitening(whitening) in ("none", None):
        raise ConfigError("--whitening: expected full or K for `kexue whiten`")
    if fit_on in ("task", "train") and data is None:
        raise ConfigError(f"--fit-on {fit_on}: give the dataset with --data")
    check_export_target(out, overwrite)  # before loading the model
    encoder = SentenceEncoder.from_pretrained(model)
    encoder.whitening = choose_whitening(encoder, whitening, fit_on, data or fit_on, batch_size=batch_size, eps=eps,
                                         log=typer.echo)
    if out.is_dir() and overwrite:
        shutil.rmtree(out)
    encoder.save_pretrained(out)
    typer.echo(f"wrote {out}")
