"""The ``kexue pretrain`` recipe: masked-LM (+ next-sentence) pretraining of a RoFormerV2 / RoFormer / BERT.

Whole-word masking over jieba words with characters as tokens (:mod:`kexue.data.masking`), sentences packed up
to ``--max-length`` within documents (:func:`kexue.tasks.pretrain.pack_documents`), next-sentence pairs and
dynamic masking redrawn each epoch (:mod:`kexue.tasks.pretrain_data`), RoFormerV2's truncated-normal init and
residual warm-up α (https://kexue.fm/archives/8998), bf16 autocast, classic or in-momentum accumulation, torchrun
data parallelism and exact resume (the Trainer). A held-out 1% of the documents gives the MLM loss / accuracy and
NSP accuracy that select ``best/``.

Optimiser: AdamW with linear warm-up and linear decay (the Trainer's schedule), not the reference's LAMB at batch
512: LAMB's layer-wise trust ratio exists to keep very large batches stable, and a 2-core CPU trains at batch
32–64 for a few thousand steps, where Adam is the standard choice.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from kexue.data.bucketing import token_budget_batches
from kexue.data.masking import MaskingConfig
from kexue.data.tokenization import Tokenizer
from kexue.errors import ConfigError, DataFormatError
from kexue.models import Transformer
from kexue.models.config import TransformerConfig
from kexue.tasks.common import jsonable
from kexue.tasks.pretrain import pack_documents, residual_alpha
from kexue.tasks.pretrain_data import MaskingCollate, PretrainDataset, fixed_batches
from kexue.tasks.pretrain_model import (PretrainingModel, compute_loss, heldout_evaluator, roformer_v2_init_,
                                        save_pretraining_model)
from kexue.train import Trainer, TrainerConfig, prepare_run_dir
from kexue.train.hooks import Hook
from kexue.train.optimization import no_decay_parameter_names
from kexue.train.seed import seed_everything
from kexue.train.technique_hooks import accumulation_trainer_config, build_optimizer_factory

FAMILIES = ("roformer_v2", "roformer", "bert")


@dataclass
class PretrainConfig:
    """Options of ``kexue pretrain`` (the trainer's live in :class:`kexue.train.TrainerConfig`).

    Args:
        corpus: text file, one sentence per line, a blank line between documents (``kexue pretrain-corpus``).
        init_from: a checkpoint folder to continue (e.g. ``kexue widen``'s output); its architecture and
            tokenizer are used and the size options are ignored.
        family, hidden_size, num_layers, num_heads, intermediate_size: the new model's architecture.
        vocab_size: size of the character vocabulary built from the corpus (``tokenizers`` WordPiece trainer).
        max_length: tokens per packed example (``[CLS]``/``[SEP]`` included).
        nsp: train a next-sentence head too (needs a pooler; NSP-BERT reads it).
        alpha_warmup_steps: RoFormerV2's residual warm-up length in optimizer updates (0 = off).
        masking: whole-word masking rates.
        heldout_fraction / heldout_max: documents kept out for evaluation (every ``1/fraction``-th document,
            at most ``heldout_max`` packed examples).
        optimizer: ``adamw`` (classic accumulation) or ``accum-adamw`` (accumulation inside Adam's moments).
        accumulation_steps: micro-batches per update.
        corpus_limit: read only the first N documents (tests, quick runs).
        max_tokens: padded tokens per micro-batch (``--max-tokens``; batches of similar-length examples, at most
            ``--batch-size`` of them); ``None`` = ``--batch-size`` examples per batch in random order. Packing stays
            inside documents and most documents here are one or two sentences, so fixed-size batches would be
            mostly padding.
    """

    corpus: Path
    init_from: str | None = None
    family: str = "roformer_v2"
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 1024
    vocab_size: int = 8000
    max_length: int = 128
    nsp: bool = True
    alpha_warmup_steps: int = 500
    masking: MaskingConfig = MaskingConfig()
    heldout_fraction: float = 0.01
    heldout_max: int = 512
    optimizer: str = "adamw"
    accumulation_steps: int = 1
    corpus_limit: int | None = None
    max_tokens: int | None = 8192

    def __post_init__(self) -> None:
        self.corpus = Path(self.corpus)
        if self.family not in FAMILIES:
            raise ConfigError(f"--family: expected one of {', '.join(FAMILIES)}, got {self.family!r}")
        for flag, value in (("--hidden-size", self.hidden_size), ("--num-layers", self.num_layers),
                            ("--num-heads", self.num_heads), ("--intermediate-size", self.intermediate_size),
                            ("--accumulation-steps", self.accumulation_steps)):
            if value < 1:
                raise ConfigError(f"{flag}: expected an integer >= 1, got {value}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"--hidden-size {self.hidden_size} is not a multiple of --num-heads {self.num_heads}")
        if self.vocab_size < 100:
            raise ConfigError(f"--vocab-size: expected at least 100, got {self.vocab_size}")
        if self.max_length < 8:
            raise ConfigError(f"--max-length: expected at least 8, got {self.max_length}")
        if self.alpha_warmup_steps < 0:
            raise ConfigError(f"--alpha-warmup-steps: expected an integer >= 0, got {self.alpha_warmup_steps}")
        if not 0.0 < self.heldout_fraction < 0.5:
            raise ConfigError(f"--heldout-fraction: expected a value in (0, 0.5), got {self.heldout_fraction}")
        if self.optimizer not in ("adamw", "accum-adamw"):
            raise ConfigError(f"--optimizer: expected adamw or accum-adamw, got {self.optimizer!r}")
        if self.max_tokens is not None and self.max_tokens < self.max_length:
            raise ConfigError(f"--max-tokens: expected at least --max-length ({self.max_length}), got {self.max_tokens}")
        if self.corpus_limit is not None and self.corpus_limit < 2:
            raise ConfigError(f"--corpus-limit: expected an integer >= 2, got {self.corpus_limit}")


def read_corpus(path: Path, limit: int | None = None) -> list[list[str]]:
    """Documents of a corpus file (one sentence per line, blank line between documents).

    Raises:
        DataFormatError: a missing or non-UTF-8 file (naming the line), or a file without any sentence.
    """
    if not path.is_file():
        raise DataFormatError(path, None, "--corpus: no such file (build one with `kexue pretrain-corpus`)")
    docs: list[list[str]] = [[]]
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as err:
                raise DataFormatError(path, number, f"not UTF-8 ({err.reason})") from err
            if line:
                docs[-1].append(line)
            elif docs[-1]:
                if limit is not None and len(docs) >= limit:
                    break
                docs.append([])
    docs = [d for d in docs if d]
    if not docs:
        raise DataFormatError(path, None, "--corpus: the file holds no sentence")
    return docs[:limit] if limit else docs


class PretrainHook(Hook):
    """Sets α of the residual warm-up before every step and the dataset's epoch before every epoch; counts the
    tokens seen (saved in checkpoints, so a resumed run reports the true total)."""

    def __init__(self, dataset: PretrainDataset, warmup_steps: int) -> None:
        self.dataset, self.warmup_steps, self.tokens = dataset, warmup_steps, 0

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def on_step_begin(self, trainer) -> None:
        trainer.model.residual_alpha = residual_alpha(trainer.state.global_step, self.warmup_steps)

    def after_backward(self, trainer, batch, loss) -> None:
        self.tokens += int(batch["attention_mask"].sum())

    def state_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tokens = int(state.get("tokens", 0))


def _budget_sampler(lengths: list[int], max_tokens: int, max_examples: int, epoch: int, generator) -> list[list[int]]:
    return token_budget_batches(lengths, max_tokens, generator, max_examples=max_examples)


def build_model(cfg: PretrainConfig, tokenizer: Tokenizer, log: Callable[[str], None]) -> PretrainingModel:
    """A new model of ``cfg``'s architecture (RoFormerV2 init for that family), or ``--init-from``'s."""
    if cfg.init_from:
        source = Transformer.from_pretrained(cfg.init_from, heads=None)
        if source.config.vocab_size != tokenizer.vocab_size:
            raise ConfigError(f"--init-from {cfg.init_from}: vocab_size {source.config.vocab_size} differs from its "
                              f"tokenizer's {tokenizer.vocab_size}")
        log(f"continuing {cfg.init_from} ({source.config.family}, hidden {source.config.hidden_size}, "
            f"{source.config.num_hidden_layers} layers)")
        return PretrainingModel.from_transformer(source, nsp=cfg.nsp)
    config = TransformerConfig(family=cfg.family, vocab_size=tokenizer.vocab_size, hidden_size=cfg.hidden_size,
                               num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                               intermediate_size=cfg.intermediate_size, max_position_embeddings=max(512, cfg.max_length),
                               pad_token_id=tokenizer.pad_token_id, pooler=cfg.nsp, mlm=True, nsp=cfg.nsp)
    model = PretrainingModel(config)
    if cfg.family == "roformer_v2":
        roformer_v2_init_(model, cfg.num_layers)
    return model


def run_tokenizer(cfg: PretrainConfig, docs: list[list[str]], output: Path, resume: bool) -> Tokenizer:
    """The run's tokenizer, kept in ``<output>/tokenizer``: ``--init-from``'s, or a character vocabulary built from
    the corpus; a resumed run reads it back from there, so its ids are those of the checkpoint.

    Raises:
        ConfigError: ``--resume`` of a run folder without its ``tokenizer/``.
    """
    folder = output / "tokenizer"
    if resume and (output / "checkpoints").is_dir():
        if not (folder / "tokenizer.json").is_file():
            raise ConfigError(f"--resume: {folder} is missing; the checkpoint's vocabulary cannot be rebuilt")
        return Tokenizer.from_pretrained(folder)
    if cfg.init_from:
        tokenizer = Tokenizer.from_pretrained(cfg.init_from)
    else:
        tokenizer = Tokenizer.train_new((s for d in docs for s in d), kind="char", vocab_size=cfg.vocab_size)
    if int(os.environ.get("RANK", "0")) == 0:  # torchrun: every rank builds the same ids; one writes them
        tokenizer.save_pretrained(folder)
    return tokenizer


def split_heldout(examples: list, fraction: float, limit: int) -> tuple[list, list]:
    """``(train, heldout)``: every ``round(1/fraction)``-th document held out, at most ``limit`` examples."""
    every = max(2, round(1 / fraction))
    held = [e for e in examples if e.document % every == every - 1][:limit]
    held_docs = {e.document for e in held}
    return [e for e in examples if e.document not in held_docs], held


def train_pretrain(cfg: PretrainConfig, trainer_cfg: TrainerConfig, log: Callable[[str], None] = print,
                   extra_hooks: Sequence[Hook] = ()) -> dict[str, Any]:
    """Pretrain; returns (on rank 0) the results also written to ``<output>/results.json``: the held-out metrics
    before/after, tokens seen, steps, seconds, the corpus and the model size.

    Raises:
        ConfigError: bad options. DataFormatError: an unreadable corpus. CheckpointError: a bad ``--init-from``.
    """
    if trainer_cfg.max_steps is not None and 0 < trainer_cfg.max_steps <= cfg.alpha_warmup_steps:
        raise ConfigError(f"--alpha-warmup-steps {cfg.alpha_warmup_steps}: must be below --max-steps "
                          f"{trainer_cfg.max_steps} (alpha must reach 1 before the model is saved)")
    docs = read_corpus(cfg.corpus, cfg.corpus_limit)
    prepare_run_dir(trainer_cfg, {"task": "pretrain", "pretrain": cfg}, log=log)
    t0 = time.perf_counter()
    tokenizer = run_tokenizer(cfg, docs, Path(trainer_cfg.output_dir), trainer_cfg.resume)
    examples = pack_documents(docs, tokenizer, cfg.max_length - (1 if cfg.nsp else 0))
    examples = [e for e in examples if len(e.input_ids) >= 6]
    train, held = split_heldout(examples, cfg.heldout_fraction, cfg.heldout_max)
    if not train or not held:
        raise ConfigError(f"--corpus {cfg.corpus}: too few documents ({len(docs)}) for a training and a held-out set")
    log(f"corpus {cfg.corpus}: {len(docs)} documents -> {len(train)} training / {len(held)} held-out examples of "
        f"<= {cfg.max_length} tokens; vocabulary {tokenizer.vocab_size} ({time.perf_counter() - t0:.0f} s)")
    special = tuple(sorted({tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id,
                            tokenizer.mask_token_id, tokenizer.unk_token_id}))
    collate = MaskingCollate(tokenizer.pad_token_id, tokenizer.mask_token_id, tokenizer.vocab_size, special,
                             trainer_cfg.seed, cfg.masking)
    ids = dict(cls_id=tokenizer.cls_token_id, sep_id=tokenizer.sep_token_id)
    train_set = PretrainDataset(train, nsp=cfg.nsp, seed=trainer_cfg.seed, **ids)
    held_set = PretrainDataset(held, nsp=cfg.nsp, seed=trainer_cfg.seed + 1, **ids)
    evaluate = heldout_evaluator(fixed_batches(held_set, collate, 64))
    seed_everything(trainer_cfg.seed)  # the initialisation follows --seed
    model = build_model(cfg, tokenizer, log)
    n_params = sum(p.numel() for p in model.parameters())
    k = cfg.accumulation_steps
    in_momentum = cfg.optimizer == "accum-adamw"
    trainer_cfg = accumulation_trainer_config(trainer_cfg, k, in_momentum, metric_for_best="mlm_loss",
                                              greater_is_better=False)
    factory = build_optimizer_factory(cfg.optimizer, accumulation_steps=k if in_momentum else 1,
                                      no_decay=no_decay_parameter_names(model))
    hook = PretrainHook(train_set, cfg.alpha_warmup_steps * (k if in_momentum else 1))
    sampler = None
    if cfg.max_tokens is not None:
        lengths = [len(e.input_ids) + (1 if cfg.nsp else 0) for e in train]
        sampler = partial(_budget_sampler, lengths, cfg.max_tokens, trainer_cfg.batch_size)
    trainer = Trainer(model, trainer_cfg, train_set, compute_loss=compute_loss, collate_fn=collate,
                      evaluate=evaluate, optimizer_factory=factory, hooks=[hook, *extra_hooks], batch_sampler=sampler,
                      save_model=save_pretraining_model(tokenizer),
                      run_config={"task": "pretrain", "pretrain": jsonable({**dataclasses.asdict(cfg), "corpus": str(cfg.corpus)}),
                                  "parameters": n_params, "train_examples": len(train),
                                  "heldout_examples": len(held)})
    if cfg.alpha_warmup_steps and trainer.total_steps <= hook.warmup_steps:
        raise ConfigError(f"--alpha-warmup-steps {cfg.alpha_warmup_steps}: must be below the run's "
                          f"{trainer.total_steps} updates (α must reach 1 before the model is saved)")
    log(f"model {model.config.family}: {n_params / 1e6:.2f}M parameters, hidden {model.config.hidden_size}, "
        f"{model.config.num_hidden_layers} layers; {trainer.total_steps} updates; NSP {'on' if cfg.nsp else 'off'}")
    before = None
    if not trainer_cfg.resume:
        with torch.no_grad():
            before = evaluate(model.eval())
    start = time.perf_counter()
    summary = trainer.fit()
    seconds = time.perf_counter() - start
    if not summary or trainer.rank != 0:
        return {}
    results = {"corpus": str(cfg.corpus), "documents": len(docs), "train_examples": len(train),
               "heldout_examples": len(held), "parameters": n_params, "before": before,
               "best": summary["best"], "final": summary["final"], "best_step": summary["best_step"],
               "optimizer_steps": summary["global_step"], "tokens_seen": hook.tokens,
               "train_seconds": seconds, "best_dir": str(Path(trainer_cfg.output_dir) / "best")}
    (Path(trainer_cfg.output_dir) / "results.json").write_text(
        json.dumps(jsonable(results), indent=2, allow_nan=False), encoding="utf-8")
    return results
