"""UniLM seq2seq commands: ``train seq2seq`` (https://kexue.fm/archives/6933), ``train kgclue`` and ``eval kgclue``
(retrieval as constrained generation, https://kexue.fm/archives/8802)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kexue.cli import options as O
from kexue.cli.app import eval_app, train_app
from kexue.cli.extraction import ScratchHeads, ScratchHidden, ScratchLayers
from kexue.errors import ConfigError

Model = Annotated[str, typer.Option("--model", "-m", help="A BERT / RoFormer / RoFormerV2 checkpoint folder, a run "
                                                          "folder (its best/), an alias, or 'scratch' (a BERT over "
                                                          "a character vocabulary of the training texts).")]
Loss = Annotated[str, typer.Option(help="ce (cross-entropy on the target tokens) or sparse-softmax (top-k, SPACES; "
                                        "for fine-tuning).")]
SparseK = Annotated[int, typer.Option(help="Top-k size of --loss sparse-softmax.")]
IncludeTarget = Annotated[bool, typer.Option("--include-target/--no-include-target",
                                             help="sparse-softmax: normalise over the top-k plus the target (the "
                                                  "article's form leaves the target out).")]
TrainLimit = Annotated[Optional[int], typer.Option(help="Use only the first N training examples.")]
EvalLimit = Annotated[Optional[int], typer.Option(help="Use only the first N dev examples.")]


def _check(model: str, max_source_length: int, max_target_length: int, batch_size: int,
           scratch: tuple[int, int, int]) -> None:
    """Refuse bad lengths, batch size and scratch sizes, and inputs longer than the model's positions, before any
    work (the run folder is not created)."""
    from kexue.hub import resolve_model_path
    from kexue.models.auto import position_limit
    from kexue.models.checkpoint import read_config
    from kexue.tasks.common import SCRATCH

    hidden, layers, heads = scratch
    for flag, value in (("--max-source-length", max_source_length), ("--max-target-length", max_target_length),
                        ("--batch-size", batch_size), ("--scratch-hidden", hidden), ("--scratch-layers", layers),
                        ("--scratch-heads", heads)):
        if value < 1:
            raise ConfigError(f"{flag}: expected an integer >= 1, got {value}")
    if model == SCRATCH:
        if hidden % heads:
            raise ConfigError(f"--scratch-heads {heads}: must divide --scratch-hidden {hidden}")
        return
    folder = resolve_model_path(model)
    limit = position_limit(read_config(folder))
    total = max_source_length + max_target_length + 3
    if limit is not None and total > limit:
        raise ConfigError(f"--max-source-length {max_source_length} + --max-target-length {max_target_length} + 3 "
                          f"special tokens = {total}: the model has {limit} positions ({folder / 'config.json'})")


def _trainer(output: Path, **kw):
    return O.trainer_config(output, metric_for_best="token_accuracy", **kw)


def _scratch(hidden: int, layers: int, heads: int):
    from kexue.tasks.common import ScratchModel

    return ScratchModel(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=4 * hidden)


@train_app.command("seq2seq")
def train_seq2seq_command(
    output: O.Output = Path("runs/seq2seq"),
    model: Model = "scratch",
    data: Annotated[str, typer.Option("--data", "-d", help="lcsts_clge, csl_title, or a file of source\\ttarget "
                                                           "lines / JSON lines {source, target}.")] = "lcsts_clge",
    dev: Annotated[Optional[str], typer.Option("--dev", help="Dev file (needed when --data is one file).")] = None,
    max_source_length: Annotated[int, typer.Option(help="Source tokens kept (special tokens excluded).")] = 128,
    max_target_length: Annotated[int, typer.Option(help="Target tokens kept (special tokens excluded).")] = 32,
    loss: Loss = "ce", sparse_k: SparseK = 10, include_target: IncludeTarget = False,
    train_limit: TrainLimit = None, eval_limit: EvalLimit = None,
    scratch_hidden: ScratchHidden = 256, scratch_layers: ScratchLayers = 4, scratch_heads: ScratchHeads = 4,
    epochs: O.Epochs = 1, max_steps: O.MaxSteps = None, batch_size: O.BatchSize = 32, lr: O.LearningRate = 2e-5,
    warmup_ratio: O.WarmupRatio = 0.0, weight_decay: O.WeightDecay = 0.01, max_grad_norm: O.GradClip = 1.0,
    eval_every: O.EvalEvery = None, seed: O.Seed = 42, precision: O.Precision = "fp32", resume: O.Resume = False,
    progress: O.ProgressBar = True, save_every: O.SaveEvery = O.DEFAULT_SAVE_EVERY,
    keep_checkpoints: O.KeepCheckpoints = 1, overwrite: O.Overwrite = False,
) -> None:
    """UniLM seq2seq with one Transformer: [CLS] source [SEP] target [SEP], the UniLM mask, loss on the target only;
    best/ by teacher-forced dev token accuracy (https://kexue.fm/archives/6933)."""
    from kexue.tasks.seq2seq import Seq2SeqConfig, train_seq2seq

    _check(model, max_source_length, max_target_length, batch_size, (scratch_hidden, scratch_layers, scratch_heads))
    cfg = Seq2SeqConfig(model=model, data=data, dev=dev, max_source_length=max_source_length,
                        max_target_length=max_target_length, loss=loss, sparse_k=sparse_k,
                        include_target=include_target, train_limit=train_limit, eval_limit=eval_limit,
                        scratch=_scratch(scratch_hidden, scratch_layers, scratch_heads))
    tcfg = _trainer(output, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr,
                    warmup_ratio=warmup_ratio, weight_decay=weight_decay, max_grad_norm=max_grad_norm,
                    eval_every=eval_every, seed=seed, precision=precision, resume=resume, progress=progress,
                    save_every=save_every, keep_checkpoints=keep_checkpoints, overwrite=overwrite)
    results = train_seq2seq(cfg, tcfg, log=typer.echo)
    if results:
        typer.echo(f"best model: {results['best_dir']}  (results: {output / 'results.json'})")


@train_app.command("kgclue")
def train_kgclue_command(
    output: O.Output = Path("runs/kgclue"),
    model: Model = "scratch",
    data: Annotated[str, typer.Option("--data", "-d", help="kgclue, or a folder of KgCLUE-format "
                                                           "train/dev/test_public JSON lines.")] = "kgclue",
    max_source_length: Annotated[int, typer.Option(help="Question tokens kept (the article: 64).")] = 64,
    max_target_length: Annotated[int, typer.Option(help="Tokens of S [SEP] P [SEP] M kept (whole <= 128).")] = 61,
    loss: Loss = "ce", sparse_k: SparseK = 10, include_target: IncludeTarget = False,
    train_limit: TrainLimit = None, eval_limit: EvalLimit = None,
    scratch_hidden: ScratchHidden = 256, scratch_layers: ScratchLayers = 4, scratch_heads: ScratchHeads = 4,
    epochs: O.Epochs = 3, max_steps: O.MaxSteps = None, batch_size: O.BatchSize = 32, lr: O.LearningRate = 5e-6,
    warmup_ratio: O.WarmupRatio = 0.0, weight_decay: O.WeightDecay = 0.0, max_grad_norm: O.GradClip = 1.0,
    eval_every: O.EvalEvery = None, seed: O.Seed = 42, precision: O.Precision = "fp32", resume: O.Resume = False,
    progress: O.ProgressBar = True, save_every: O.SaveEvery = O.DEFAULT_SAVE_EVERY,
    keep_checkpoints: O.KeepCheckpoints = 1, overwrite: O.Overwrite = False,
) -> None:
    """KgCLUE seq2seq: [CLS] Q [SEP] S [SEP] P [SEP] M [SEP] (the (S, P, M) order); defaults are the article's
    (Adam 5e-6, batch 32, 3 epochs). The knowledge base is built from the train/dev/test_public answers."""
    from kexue.tasks.kgclue import kgclue_config, train_kgclue

    _check(model, max_source_length, max_target_length, batch_size, (scratch_hidden, scratch_layers, scratch_heads))
    cfg = kgclue_config(model=model, data=data, max_source_length=max_source_length,
                        max_target_length=max_target_length, loss=loss, sparse_k=sparse_k,
                        include_target=include_target, train_limit=train_limit, eval_limit=eval_limit,
                        scratch=_scratch(scratch_hidden, scratch_layers, scratch_heads))
    tcfg = _trainer(output, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr,
                    warmup_ratio=warmup_ratio, weight_decay=weight_decay, max_grad_norm=max_grad_norm,
                    eval_every=eval_every, seed=seed, precision=precision, resume=resume, progress=progress,
                    save_every=save_every, keep_checkpoints=keep_checkpoints, overwrite=overwrite)
    results = train_kgclue(cfg, tcfg, log=typer.echo)
    if results:
        typer.echo(f"best model: {results['best_dir']}  (then: kexue eval kgclue --model {output})")


@eval_app.command("kgclue")
def eval_kgclue_command(
    model: Annotated[str, typer.Option("--model", "-m", help="A `train kgclue` run folder or its best/.")],
    data: Annotated[str, typer.Option("--data", "-d", help="kgclue or a KgCLUE-format folder.")] = "kgclue",
    split: Annotated[str, typer.Option(help="dev or test (test_public).")] = "dev",
    beam: Annotated[int, typer.Option(help="Beam width (1 = greedy; the article: 3 on dev, 1/3/5 on test).")] = 3,
    lookahead: Annotated[bool, typer.Option("--lookahead/--no-lookahead",
                                            help="Re-weight by the question overlap of the reachable keys once S is "
                                                 "decoded (spec §9 step 4).")] = False,
    limit: Annotated[Optional[int], typer.Option(help="Answer only the first N questions.")] = None,
    batch_size: Annotated[int, typer.Option(help="Questions decoded together.")] = 32,
    predictions: Annotated[Optional[Path], typer.Option(help="Write the answers as JSON lines here.")] = None,
) -> None:
    """Answer KgCLUE questions by trie-constrained beam search and print EM / F1 on the object (JSON)."""
    from kexue.data.registry import canonical_split
    from kexue.hub import resolve_model_path
    from kexue.tasks.kgclue import evaluate_kgclue

    if canonical_split(split) == "train":
        raise ConfigError("--split: expected dev or test (the train split is what the model learned)")
    for flag, value in (("--beam", beam), ("--batch-size", batch_size), ("--limit", limit)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag}: expected an integer >= 1, got {value}")
    resolve_model_path(model)  # an unknown model fails before the data is read
    if predictions is not None and predictions.parent and not predictions.parent.is_dir():
        raise ConfigError(f"--predictions {predictions}: the folder {predictions.parent} does not exist")
    report = evaluate_kgclue(model, data, split, beam_size=beam, lookahead=lookahead, limit=limit,
                             batch_size=batch_size, predictions=predictions, log=lambda m: typer.echo(m, err=True))
    O.echo_json(report)
