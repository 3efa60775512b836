"""``kexue train summarize``: SPACES extract-then-generate summarisation (https://kexue.fm/archives/8046)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kexue.cli import options as O
from kexue.cli.app import train_app
from kexue.cli.extraction import ScratchHeads, ScratchHidden, ScratchLayers
from kexue.cli.seq2seq import IncludeTarget, Loss, Model, SparseK, TrainLimit, EvalLimit, _check, _scratch
from kexue.errors import ConfigError


@train_app.command("summarize")
def train_summarize_command(
    output: O.Output = Path("runs/summarize"),
    model: Model = "scratch",
    data: Annotated[str, typer.Option("--data", "-d", help="cail2020_sfzy_sample or a CAIL2020 sfzy JSON-lines file "
                                                           "(extract-then-generate), or lcsts_clge / csl_title / a "
                                                           "source\\ttarget file (the generator alone).")
                    ] = "cail2020_sfzy_sample",
    dev: Annotated[Optional[str], typer.Option("--dev", help="Dev pairs (needed when --data is one pair file).")
                   ] = None,
    max_source_length: Annotated[int, typer.Option(help="Source tokens kept (special tokens excluded).")] = 256,
    max_target_length: Annotated[int, typer.Option(help="Summary tokens kept (special tokens excluded).")] = 64,
    loss: Loss = "sparse-softmax", sparse_k: SparseK = 10, include_target: IncludeTarget = False,
    copy: Annotated[bool, typer.Option("--copy/--no-copy", help="The copy head (BIO tags from the LCS) and decoding "
                                                                "under its predicted tags.")] = True,
    copy_weight: Annotated[float, typer.Option(help="Weight of the copy loss (SPACES: 2).")] = 2.0,
    noise: Annotated[float, typer.Option(help="Input tokens replaced by a random token of the same sequence, with "
                                              "this probability (SPACES: 0.15; labels stay clean).")] = 0.15,
    num_beams: Annotated[int, typer.Option(help="Beam width of the final decoding (1 = greedy).")] = 1,
    test_limit: Annotated[Optional[int], typer.Option(help="Decode and score only the first N test texts.")] = None,
    encoder: Annotated[str, typer.Option(help="Frozen clause encoder of the extractor (sfzy data).")
                       ] = "kexue-zh-mini",
    max_clauses: Annotated[int, typer.Option(help="Document clauses kept, from the end (SPACES: 256).")] = 256,
    folds: Annotated[int, typer.Option(help="Cross-validation folds of the out-of-fold extractions (SPACES: 15).")
                     ] = 2,
    threshold: Annotated[float, typer.Option(help="Extract clauses with probability above this (SPACES: 0.2).")
                         ] = 0.2,
    extractor_epochs: Annotated[int, typer.Option(help="Epochs of the DGCNN extractor (SPACES: 20).")] = 20,
    train_limit: TrainLimit = None, eval_limit: EvalLimit = None,
    scratch_hidden: ScratchHidden = 256, scratch_layers: ScratchLayers = 4, scratch_heads: ScratchHeads = 4,
    epochs: O.Epochs = 1, max_steps: O.MaxSteps = None, batch_size: O.BatchSize = 8, lr: O.LearningRate = 2e-5,
    warmup_ratio: O.WarmupRatio = 0.0, weight_decay: O.WeightDecay = 0.01, max_grad_norm: O.GradClip = 1.0,
    eval_every: O.EvalEvery = None, seed: O.Seed = 42, precision: O.Precision = "fp32", resume: O.Resume = False,
    progress: O.ProgressBar = True, save_every: O.SaveEvery = O.DEFAULT_SAVE_EVERY,
    keep_checkpoints: O.KeepCheckpoints = 1, overwrite: O.Overwrite = False,
) -> None:
    """SPACES: clause oracle + DGCNN extractor (sfzy data), then a UniLM generator with input noise, sparse softmax
    and the copy head; best/ by dev token accuracy, then char ROUGE on the test texts (results.json)."""
    from kexue.tasks.seq2seq import Seq2SeqConfig
    from kexue.tasks.summarization import SummarizeConfig, sfzy_path, train_summarize
    from kexue.tasks.summarization_extract import ExtractorConfig

    _check(model, max_source_length, max_target_length, batch_size, (scratch_hidden, scratch_layers, scratch_heads))
    ext = ExtractorConfig(encoder=encoder, max_clauses=max_clauses, folds=folds, threshold=threshold,
                          epochs=extractor_epochs)
    seq = Seq2SeqConfig(model=model, data=data, dev=dev, max_source_length=max_source_length,
                        max_target_length=max_target_length, loss=loss, sparse_k=sparse_k,
                        include_target=include_target, train_limit=train_limit, eval_limit=eval_limit,
                        scratch=_scratch(scratch_hidden, scratch_layers, scratch_heads))
    cfg = SummarizeConfig(seq2seq=seq, copy=copy, copy_weight=copy_weight, noise=noise, num_beams=num_beams,
                          test_limit=test_limit)
    if sfzy_path(data) is not None:
        from kexue.hub import resolve_model_path
        if dev is not None:
            raise ConfigError("--dev: sfzy data uses its last fifth of documents as dev (no --dev file)")
        try:
            resolve_model_path(encoder)  # an unknown --encoder fails before the run folder exists
        except ConfigError as err:
            raise ConfigError(f"--encoder {encoder}: {err}") from None
    tcfg = O.trainer_config(output, metric_for_best="token_accuracy", epochs=epochs, max_steps=max_steps,
                            batch_size=batch_size, lr=lr, warmup_ratio=warmup_ratio, weight_decay=weight_decay,
                            max_grad_norm=max_grad_norm, eval_every=eval_every, seed=seed, precision=precision,
                            resume=resume, progress=progress, save_every=save_every,
                            keep_checkpoints=keep_checkpoints, overwrite=overwrite)
    results = train_summarize(cfg, ext, tcfg, log=typer.echo)
    if results:
        typer.echo(f"best model: {results['best_dir']}  (results: {output / 'results.json'})")
