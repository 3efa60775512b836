"""Extraction commands: ``train ner|relation|event`` and ``predict ner|relation|event`` (text lines in, JSON lines
out with character offsets into each original line)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from kexue.cli import options as O
from kexue.cli.app import predict_app, train_app
from kexue.cli.inputs import read_text_lines

Model = Annotated[str, typer.Option("--model", "-m", help="minilm, a checkpoint folder, or 'scratch' (character "
                                                          "vocabulary from the training texts).")]
Data = Annotated[str, typer.Option("--data", "-d", help="Dataset name under $KEXUE_DATA or a folder.")]
MaxLength = Annotated[int, typer.Option(help="Tokens per text ([CLS]/[SEP] included).")]
HeadSize = Annotated[int, typer.Option(help="Head size d of the GlobalPointer heads.")]
TrainLimit = Annotated[Optional[int], typer.Option(help="Use only the first N training examples.")]
EvalLimit = Annotated[Optional[int], typer.Option(help="Use only the first N examples of dev and test.")]
Efficient = Annotated[bool, typer.Option("--efficient/--standard", help="Efficient GlobalPointer pointers "
                                                                        "(default) or standard GlobalPointer.")]
ScratchHidden = Annotated[int, typer.Option(help="--model scratch: hidden size.")]
ScratchLayers = Annotated[int, typer.Option(help="--model scratch: layers.")]
ScratchHeads = Annotated[int, typer.Option(help="--model scratch: attention heads.")]
RunModel = Annotated[str, typer.Option("--model", "-m", help="Run folder (its best/) or saved model folder.")]
Input = Annotated[Optional[Path], typer.Option("--input", "-i", help="Text lines (default stdin).")]
Output = Annotated[Optional[Path], typer.Option("--output", "-o", help="JSON lines file (default stdout).")]
PredictBatch = Annotated[int, typer.Option(min=1, help="Texts per forward pass.")]
HeadLR = Annotated[float, typer.Option(help="Peak learning rate of the task head (absolute; the encoder stays at "
                                             "--lr; a CRF's --crf-lr-multiplier applies on top). 5e-3 was best on "
                                             "CoNLL-2003 for the GlobalPointer heads (docs/RESULTS.md).")]


def _common(model: str, data: str, max_length: int, head_size: int, train_limit: int | None,
            eval_limit: int | None, scratch_hidden: int, scratch_layers: int, scratch_heads: int) -> dict[str, Any]:
    from kexue.models.auto import check_max_length
    from kexue.tasks.common import SCRATCH, ScratchModel

    if model != SCRATCH:
        check_max_length(model, max_length)
    scratch = ScratchModel(hidden_size=scratch_hidden, num_hidden_layers=scratch_layers,
                           num_attention_heads=scratch_heads, intermediate_size=4 * scratch_hidden)
    return {"model": model, "data": data, "max_length": max_length, "head_size": head_size,
            "train_limit": train_limit, "eval_limit": eval_limit, "scratch": scratch}


def _train(train: Any, cfg: Any, output: Path, **trainer_options: Any) -> None:
    """Run ``train(cfg, trainer_config)`` with the shared trainer options (best checkpoint by F1) and report."""
    results = train(cfg, O.trainer_config(output, metric_for_best="f1", **trainer_options), log=typer.echo)
    if results:  # empty on the non-zero ranks of a torchrun launch
        typer.echo(f"best model: {results['best_dir']}  (results: {output / 'results.json'})")


@train_app.command("ner")
def train_ner_command(
    output: O.Output = Path("runs/ner"), model: Model = "minilm", data: Data = "conll2003",
    head: Annotated[str, typer.Option(help="global_pointer, efficient_global_pointer, crf or softmax.")
                    ] = "global_pointer",
    crf_lr_multiplier: Annotated[float, typer.Option(help="CRF transitions learn this many times faster "
                                                          "(kexue.fm/archives/7196); 1 = off.")] = 1.0,
    lenient_bio: Annotated[bool, typer.Option("--lenient-bio", help="Read a BIO I-X tag that does not continue an "
                                              "entity as a new entity (conlleval's rule) instead of refusing the "
                                              "file with its line.")] = False,
    max_length: MaxLength = 128, head_size: HeadSize = 64, train_limit: TrainLimit = None,
    eval_limit: EvalLimit = None, scratch_hidden: ScratchHidden = 256, scratch_layers: ScratchLayers = 4,
    scratch_heads: ScratchHeads = 4,
    epochs: O.Epochs = 3, max_steps: O.MaxSteps = None, batch_size: O.BatchSize = 16, lr: O.LearningRate = 5e-5,
    warmup_ratio: O.WarmupRatio = 0.1, weight_decay: O.WeightDecay = 0.01, max_grad_norm: O.GradClip = 1.0,
    eval_every: O.EvalEvery = None, seed: O.Seed = 42, precision: O.Precision = "fp32", resume: O.Resume = False,
    save_every: O.SaveEvery = O.DEFAULT_SAVE_EVERY, keep_checkpoints: O.KeepCheckpoints = 1,
    overwrite: O.Overwrite = False,
    progress: O.ProgressBar = True, head_lr: HeadLR = 5e-3,
) -> None:
    """Train an NER model (GlobalPointer kexue.fm/archives/8373, Efficient GP /8877, CRF, softmax)."""
    from kexue.tasks.ner import NerConfig, train_ner

    cfg = NerConfig(head=head, crf_lr_multiplier=crf_lr_multiplier, lenient_bio=lenient_bio, head_lr=head_lr,
                    **_common(model, data, max_length, head_size, train_limit, eval_limit, scratch_hidden,
                              scratch_layers, scratch_heads))
    _train(train_ner, cfg, output, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr,
           warmup_ratio=warmup_ratio, weight_decay=weight_decay, max_grad_norm=max_grad_norm,
           eval_every=eval_every, seed=seed, precision=precision, resume=resume, progress=progress,
           save_every=save_every, keep_checkpoints=keep_checkpoints, overwrite=overwrite)


@train_app.command("relation")
def train_relation_command(
    output: O.Output = Path("runs/relation"), model: Model = "minilm", data: Data = "duie2.0_subset",
    efficient: Efficient = True, max_length: MaxLength = 128, head_size: HeadSize = 64,
    train_limit: TrainLimit = None, eval_limit: EvalLimit = None, scratch_hidden: ScratchHidden = 256,
    scratch_layers: ScratchLayers = 4, scratch_heads: ScratchHeads = 4,
    epochs: O.Epochs = 3, max_steps: O.MaxSteps = None, batch_size: O.BatchSize = 16, lr: O.LearningRate = 5e-5,
    warmup_ratio: O.WarmupRatio = 0.1, weight_decay: O.WeightDecay = 0.01, max_grad_norm: O.GradClip = 1.0,
    eval_every: O.EvalEvery = None, seed: O.Seed = 42, precision: O.Precision = "fp32", resume: O.Resume = False,
    save_every: O.SaveEvery = O.DEFAULT_SAVE_EVERY, keep_checkpoints: O.KeepCheckpoints = 1,
    overwrite: O.Overwrite = False,
    progress: O.ProgressBar = True, head_lr: HeadLR = 5e-3,
) -> None:
    """Train GPLinker for joint entity-relation extraction (kexue.fm/archives/8888)."""
    from kexue.tasks.relation import RelationConfig, train_relation

    cfg = RelationConfig(efficient=efficient, head_lr=head_lr,
                         **_common(model, data, max_length, head_size, train_limit, eval_limit, scratch_hidden,
                                   scratch_layers, scratch_heads))
    _train(train_relation, cfg, output, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr,
           warmup_ratio=warmup_ratio, weight_decay=weight_decay, max_grad_norm=max_grad_norm,
           eval_every=eval_every, seed=seed, precision=precision, resume=resume, progress=progress,
           save_every=save_every, keep_checkpoints=keep_checkpoints, overwrite=overwrite)


@train_app.command("event")
def train_event_command(
    output: O.Output = Path("runs/event"), model: Model = "minilm", data: Data = "duee1.0",
    efficient: Efficient = True, max_length: MaxLength = 128, head_size: HeadSize = 64,
    train_limit: TrainLimit = None, eval_limit: EvalLimit = None, scratch_hidden: ScratchHidden = 256,
    scratch_layers: ScratchLayers = 4, scratch_heads: ScratchHeads = 4,
    epochs: O.Epochs = 3, max_steps: O.MaxSteps = None, batch_size: O.BatchSize = 16, lr: O.LearningRate = 5e-5,
    warmup_ratio: O.WarmupRatio = 0.1, weight_decay: O.WeightDecay = 0.01, max_grad_norm: O.GradClip = 1.0,
    eval_every: O.EvalEvery = None, seed: O.Seed = 42, precision: O.Precision = "fp32", resume: O.Resume = False,
    save_every: O.SaveEvery = O.DEFAULT_SAVE_EVERY, keep_checkpoints: O.KeepCheckpoints = 1,
    overwrite: O.Overwrite = False,
    progress: O.ProgressBar = True, head_lr: HeadLR = 5e-3,
) -> None:
    """Train GPLinker for joint event extraction (kexue.fm/archives/8926)."""
    from kexue.tasks.event import EventConfig, train_event

    cfg = EventConfig(efficient=efficient, head_lr=head_lr,
                      **_common(model, data, max_length, head_size, train_limit, eval_limit, scratch_hidden,
                                scratch_layers, scratch_heads))
    _train(train_event, cfg, output, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr,
           warmup_ratio=warmup_ratio, weight_decay=weight_decay, max_grad_norm=max_grad_norm,
           eval_every=eval_every, seed=seed, precision=precision, resume=resume, progress=progress,
           save_every=save_every, keep_checkpoints=keep_checkpoints, overwrite=overwrite)


def _predict(load, model: str, input: Path | None, output: Path | None, batch_size: int) -> None:
    from kexue.tasks.extraction_common import predict, tokenize

    lines = read_text_lines(input)
    loaded = load(model)
    items = tokenize(loaded.tokenizer, lines, loaded.max_length)
    preds = predict(loaded, items, batch_size)
    out = "".join(json.dumps(loaded.task.to_json(p, it), ensure_ascii=False) + "\n" for p, it in zip(preds, items))
    if output is None:
        sys.stdout.write(out)
        sys.stdout.flush()
    else:
        output.write_text(out, encoding="utf-8")


@predict_app.command("ner")
def predict_ner_command(model: RunModel, input: Input = None, output: Output = None,
                        batch_size: PredictBatch = 64) -> None:
    """Entities of each input line: {"text", "entities": [{"type", "start", "end", "text"}], "truncated"}."""
    from kexue.tasks.ner import load_ner_model

    _predict(load_ner_model, model, input, output, batch_size)


@predict_app.command("relation")
def predict_relation_command(model: RunModel, input: Input = None, output: Output = None,
                             batch_size: PredictBatch = 64) -> None:
    """Triples of each line: {"text", "relations": [{"subject", "subject_start", "subject_end", "predicate",
    "object", "object_start", "object_end"}], "truncated"}."""
    from kexue.tasks.relation import load_relation_model

    _predict(load_relation_model, model, input, output, batch_size)


@predict_app.command("event")
def predict_event_command(model: RunModel, input: Input = None, output: Output = None,
                          batch_size: PredictBatch = 64) -> None:
    """Events of each line: {"text", "events": [{"event_type", "trigger", "arguments": [{"role", "text", "start",
    "end"}]}], "truncated"}."""
    from kexue.tasks.event import load_event_model

    _predict(load_event_model, model, input, output, batch_size)
