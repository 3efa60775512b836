"""The PET recipe (``kexue train pet``): zero-shot scoring, few-shot fine-tuning of the MLM on pattern-wrapped
examples, semi-supervised PET (the MLM loss on unlabelled text in the same batches) and MLM-only training on the
unlabelled text. https://kexue.fm/archives/7764; units in :mod:`kexue.prompting`; data in
:mod:`kexue.tasks.prompt_data`.

Modes (``--mode``): ``zero-shot`` (no training, the pretrained MLM), ``few-shot`` (labelled examples: label word at
the mask + 15% random masking of the other tokens), ``semi-supervised`` (the labelled examples and the unlabelled
texts shuffled together, as the article's code does), ``unsupervised`` (unlabelled texts only: the article's "MLM
on in-domain text" row). The dev split selects ``best/``; ``results.json`` holds zero-shot and best dev/test
accuracy. :func:`run_prompt_recipe` is shared with ``train ptuning`` (:mod:`kexue.tasks.ptuning`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kexue.data.tokenization import Tokenizer
from kexue.errors import ConfigError
from kexue.models import Transformer
from kexue.prompting import ClozePattern, PETClassifier, Verbalizer, cloze_word_scores
from kexue.tasks.common import jsonable
from kexue.tasks.prompt_data import (PromptExample, PromptSplits, default_pattern, eval_subset, load_prompt_data,
                                     pattern_input)
from kexue.train import Trainer, TrainerConfig, prepare_run_dir

MODES = ("zero-shot", "few-shot", "semi-supervised", "unsupervised")
PROMPTING_FILE = "prompting.json"


@dataclass
class PETConfig:
    """Options of ``kexue train pet`` (the trainer's live in :class:`TrainerConfig`).

    Args:
        model: a checkpoint with a trained MLM head (folder, run folder or alias).
        data: ``fewclue/<task>``, ``sentiment_zh``, ``sst2`` or a path; fold: FewCLUE's ``0``-``4`` or ``few_all``.
        mode: see the module docstring. pattern / verbalizer: default the task's preset
            (:data:`kexue.tasks.prompt_data.PRESETS`); verbalizer ``{label index: [words]}``.
        combine: ``sum-prob`` or ``mean-log`` for labels with several words.
        mlm_probability: the random masking of the other tokens (``--mlm-probability``; 0 = off).
        labelled_fraction: the labelled share of the training file (sentiment_zh / sst2 default 1%).
        unlabelled_limit: use at most N unlabelled texts; eval_limit: evaluate on a fixed random sample of N dev/test
            examples (:func:`kexue.tasks.prompt_data.eval_subset`).
    """

    model: str = "minilm"
    data: str = "sentiment_zh"
    fold: str = "0"
    mode: str = "few-shot"
    pattern: str | None = None
    verbalizer: dict[str, list] | None = None
    combine: str = "sum-prob"
    max_length: int = 128
    mlm_probability: float = 0.15
    labelled_fraction: float | None = None
    unlabelled_limit: int | None = None
    eval_limit: int | None = None
    eval_batch_size: int = 32

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"--mode: expected one of {', '.join(MODES)}, got {self.mode!r}")
        if not 0.0 <= self.mlm_probability < 1.0:
            raise ConfigError(f"--mlm-probability: expected a value in [0, 1), got {self.mlm_probability}")
        for flag, value in (("--unlabelled-limit", self.unlabelled_limit), ("--eval-limit", self.eval_limit)):
            if value is not None and value < 1:
                raise ConfigError(f"{flag}: expected a positive integer, got {value}")
        if self.max_length < 8:
            raise ConfigError(f"--max-length: expected at least 8, got {self.max_length}")


class PromptTask:
    """A classifier over one task's data: the pattern input of each record, ChID's per-example candidates,
    accuracy and training features."""

    def __init__(self, clf: PETClassifier, splits: PromptSplits, batch_size: int) -> None:
        self.clf, self.splits, self.batch_size = clf, splits, batch_size

    def candidate_words(self, example: PromptExample):
        """ChID: the example's seven idioms as label words (indices 0..6)."""
        return Verbalizer({j: [c] for j, c in enumerate(example.candidates)}).tokenize(self.clf.tokenizer)

    def scores(self, examples: Sequence[PromptExample]) -> torch.Tensor:
        """Label (or candidate) scores ``[N, C]``."""
        inputs = [pattern_input(e) for e in examples]
        if not self.splits.candidates:
            return self.clf.scores(inputs)
        words = [self.candidate_words(e) for e in examples]
        return cloze_word_scores(self.clf.model, self.clf.tokenizer, self.clf.pattern, words, inputs,
                                 max_length=self.clf.max_length, batch_size=self.batch_size,
                                 prompt_ids=self.clf.prompt_ids, per_example=True)

    def accuracy(self, examples: Sequence[PromptExample]) -> float:
        """Accuracy ×100 on labelled ``examples``."""
        if not examples:
            raise ConfigError("accuracy: no examples to evaluate")
        pred = self.scores(examples).argmax(-1)
        gold = torch.tensor([e.label for e in examples])
        return float((pred == gold).double().mean()) * 100

    def features(self, example: PromptExample, labelled: bool = True) -> dict[str, list[int]]:
        """A training feature (pattern + label word, or the plain unlabelled text)."""
        inp = pattern_input(example)
        if not labelled:
            return self.clf.training_features(inp, None)
        words = self.candidate_words(example) if self.splits.candidates else None
        return self.clf.training_features(inp, example.label, words)


def build_verbalizer(cfg: PETConfig, splits: PromptSplits, recipe_pattern: str | None = None
                     ) -> tuple[str, Verbalizer]:
    """The pattern text and verbalizer: the options, else the recipe's template (P-tuning), else the task's preset
    (:func:`kexue.tasks.prompt_data.default_pattern`), else the label names as words."""
    pattern = cfg.pattern or recipe_pattern
    needs_preset = pattern is None or (cfg.verbalizer is None and not splits.candidates)
    preset_pattern, preset_words = default_pattern(cfg.data) if needs_preset else (None, None)
    pattern = pattern or preset_pattern
    if splits.candidates:
        words = {0: ["一"]}                      # ChID scores its own candidates; a placeholder verbalizer
    elif cfg.verbalizer:
        words = {int(k): v for k, v in cfg.verbalizer.items()}
    elif preset_words is not None:
        words = preset_words
    else:
        words = {i: [name] for i, name in enumerate(splits.label_names)}
    labels = sorted({e.label for e in splits.train + splits.dev + splits.test if e.label is not None})
    if not splits.candidates and set(labels) - set(words):
        raise ConfigError(f"--verbalizer: labels {sorted(set(labels) - set(words))} have no words")
    return pattern, Verbalizer(dict(sorted(words.items())), combine=cfg.combine)


def load_mlm(model: str) -> nn.Module:
    """kexue's Transformer with its MLM head.

    Raises:
        ConfigError: a checkpoint without a trained MLM head (naming ``--model``).
    """
    backbone = Transformer.from_pretrained(model)
    if backbone.mlm_head is None:
        raise ConfigError(f"--model {model}: the checkpoint has no trained masked-LM head (cls.predictions.*); "
                          "PET and P-tuning read the label words from it")
    return backbone


def save_prompt_model(module: nn.Module, folder: Path, tokenizer, meta: dict[str, Any]) -> None:
    """Write ``module`` (``save_pretrained``), the tokenizer and ``prompting.json`` (pattern, verbalizer, ids)."""
    module.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (Path(folder) / PROMPTING_FILE).write_text(json.dumps(jsonable(meta), indent=2, ensure_ascii=False),
                                               encoding="utf-8")


def run_prompt_recipe(cfg: PETConfig, trainer_cfg: TrainerConfig, log: Callable[[str], None], *, task: str,
                      build: Callable[[nn.Module, Tokenizer], tuple[nn.Module, list[int] | None]],
                      recipe_pattern: str | None = None, run_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check data, pattern, verbalizer and tokenizer, prepare the run folder, build the trained module, score
    zero-shot, train, reload ``best/`` and score dev and test; returns (and writes to ``results.json``) the
    accuracies.

    Args:
        task: the run's name (``pet`` / ``ptuning``).
        build: ``build(backbone, tokenizer) -> (trained module, prompt ids or None)``.
        recipe_pattern: the recipe's default template (P-tuning), before the task preset.
    Raises:
        ConfigError / DataFormatError before the run folder is touched, for bad options, data, a pattern or a label
        word outside the vocabulary; CheckpointError for weights that do not load.
    """
    splits = load_prompt_data(cfg.data, cfg.fold, cfg.labelled_fraction)   # data errors first
    if cfg.mode in ("semi-supervised", "unsupervised") and not splits.unlabelled:
        raise ConfigError(f"--mode {cfg.mode}: --data {cfg.data} has no unlabelled texts")
    pattern_text, verbalizer = build_verbalizer(cfg, splits, recipe_pattern)
    pattern = ClozePattern(pattern_text)
    tokenizer = Tokenizer.from_pretrained(cfg.model)
    verbalizer.tokenize(tokenizer, pattern.num_masks)                      # label words in the vocabulary
    backbone = load_mlm(cfg.model)                                         # a head-less checkpoint: before the folder
    run_config = {"task": task, task: jsonable(asdict(cfg)), **(run_extra or {})}
    prepare_run_dir(trainer_cfg, run_config, log=log)
    module, prompt_ids = build(backbone, tokenizer)
    clf = PETClassifier(module, tokenizer, pattern, verbalizer, max_length=cfg.max_length,
                        batch_size=cfg.eval_batch_size, prompt_ids=prompt_ids)
    job = PromptTask(clf, splits, cfg.eval_batch_size)
    dev, test = eval_subset(splits.dev, cfg.eval_limit), eval_subset(splits.test, cfg.eval_limit)
    module.eval()
    zero = {"dev": job.accuracy(dev), "test": job.accuracy(test)}
    log(f"{cfg.data} fold {cfg.fold}: {len(splits.train)} labelled, {len(splits.unlabelled)} unlabelled; pattern "
        f"{pattern.template!r}; zero-shot dev {zero['dev']:.2f}, test {zero['test']:.2f}")
    results: dict[str, Any] = {"data": cfg.data, "fold": cfg.fold, "model": cfg.model, "mode": cfg.mode,
                               "pattern": pattern.template, "labelled": len(splits.train), "zero_shot": zero}
    out = Path(trainer_cfg.output_dir)
    if cfg.mode != "zero-shot":
        unlabelled = splits.unlabelled[:cfg.unlabelled_limit]
        feats = [] if cfg.mode == "unsupervised" else [job.features(e) for e in splits.train]
        if cfg.mode in ("semi-supervised", "unsupervised"):
            feats += [job.features(e, labelled=False) for e in unlabelled]
        meta = {"pattern": pattern.template, "verbalizer": {str(k): v for k, v in zip(verbalizer.labels,
                                                                                    verbalizer.words)},
                "combine": cfg.combine, "prompt_ids": prompt_ids, "data": cfg.data}

        def evaluate(model: nn.Module) -> dict[str, float]:
            clf.model = model
            return {"accuracy": job.accuracy(dev)}

        trainer_cfg.metric_for_best = trainer_cfg.metric_for_best or "accuracy"
        trainer = Trainer(module, trainer_cfg, feats, collate_fn=clf.collate, evaluate=evaluate,
                          compute_loss=lambda model, batch: clf.loss(model, batch, cfg.mlm_probability),
                          save_model=lambda model, folder: save_prompt_model(model, folder, tokenizer, meta),
                          run_config=run_config)
        start = time.perf_counter()
        fit = trainer.fit()
        if fit.get("best_metric") is None:
            return {}
        seconds = time.perf_counter() - start
        best = Transformer.from_pretrained(out / "best").eval()
        clf.model = best
        results.update({"best": {"dev": job.accuracy(dev), "test": job.accuracy(test)},
                        "best_step": fit.get("best_step"), "train_seconds": seconds,
                        "optimizer_steps": trainer.state.global_step, "best_dir": str(out / "best")})
        log(f"best (step {fit.get('best_step')}): dev {results['best']['dev']:.2f}, test "
            f"{results['best']['test']:.2f}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(jsonable(results), indent=2, ensure_ascii=False), encoding="utf-8")
    return results


def train_pet(cfg: PETConfig, trainer_cfg: TrainerConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``kexue train pet``: :func:`run_prompt_recipe` with the MLM itself as the trained module.

    Raises:
        ConfigError: a ``--pattern`` with ``{p}`` slots (P-tuning's trainable tokens), and as :func:`run_prompt_recipe`.
    """
    if cfg.pattern is not None and ClozePattern(cfg.pattern).num_prompts:
        raise ConfigError(f"--pattern {cfg.pattern!r}: {{p}} slots are P-tuning's trainable tokens; use "
                          "`kexue train ptuning`")
    return run_prompt_recipe(cfg, trainer_cfg, log, task="pet", build=lambda backbone, tok: (backbone, None))
