"""The STS recipe: fine-tune a sentence encoder on labelled sentence pairs and evaluate it as the articles do.

Losses: CoSENT ("CoSENT(一):比Sentence-BERT更有效的句向量方案", https://kexue.fm/archives/8847) and the
Sentence-BERT baselines it is compared with (softmax over ``[u; v; |u-v|]`` for categorical labels, cosine
MSE for graded scores). Evaluation: Spearman x100 of the cosine over a whole split; for binary data also
accuracy and F1 at the threshold searched on dev and frozen for test ("CoSENT(二)",
https://kexue.fm/archives/8860).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kexue.data.bucketing import LengthBucketBatchSampler
from kexue.data.collate import pad_batch
from kexue.data.records import SentencePair
from kexue.data.registry import DATASETS
from kexue.embeddings import SentenceEncoder
from kexue.errors import ConfigError
from kexue.losses.cosent import cosent_loss
from kexue.losses.sbert import SoftmaxLoss, cosine_mse_loss
from kexue.metrics.sts import evaluate_pairs
from kexue.tasks.common import SCRATCH, ScratchModel, build_backbone, jsonable
from kexue.tasks.sts_splits import Splits, is_binary, load_splits, split_labels  # noqa: F401  (re-exported)
from kexue.train import Trainer, TrainerConfig, prepare_run_dir
from kexue.train.distributed import is_main_process
from kexue.train.seed import seed_everything

LOSSES = ("cosent", "softmax", "mse")


@dataclass
class STSConfig:
    """Options of the STS recipe (the trainer's options live in :class:`kexue.train.TrainerConfig`).

    Args:
        model: ``minilm``, a checkpoint folder, a run folder, or ``scratch`` (see :class:`ScratchModel`).
        data: a registered dataset name (``stsb_en`` ...) or a path (see :func:`kexue.data.registry.resolve_dataset`).
        loss: ``cosent``, ``softmax`` (Sentence-BERT classifier; categorical labels) or ``mse`` (cosine MSE).
        pooling: ``cls``, ``pooler``, ``last-avg`` or ``first-last-avg``.
        max_length: tokens per sentence.
        scale: CoSENT's λ. Default 5: with all-MiniLM-L6-v2 on STS-B (lr 5e-6) dev Spearman rose as λ fell
            (20: 87.45, 10: 87.76, 5: 88.0; docs/RESULTS.md, sts-defaults); the article's 20 suits models that
            were not sentence-tuned before.
        train_limit / eval_limit: use only the first N pairs of train / of each evaluated split (quick runs).
        extra_eval: other datasets whose dev/test splits are evaluated after training (e.g. afqmc -> atec, bq ...).
        eval_batch_size: sentences per forward pass when encoding for evaluation.
        eval_before: also evaluate dev/test before training (the zero-shot numbers).
        length_bucketing: batch pairs of similar length (less padding, faster); ``False`` = plain shuffled
            batches. CoSENT only compares pairs inside a batch, so bucketing changes what it sees.
        dev / test: ``--dev FILE`` / ``--test FILE``: evaluate on these files instead of ``data``'s own splits
            (required, or ``split_ratio``, when ``data`` is a single file: it is never reused as dev or test).
        split_ratio: ``--split-ratio R``: cut dev and test (``R`` of the pairs each, shuffled by the trainer's
            seed) from a single ``data`` file; see :mod:`kexue.data.splits`.
        score_range: ``--score-range LO,HI``: the declared range of the gold scores; ``None`` = the registered
            range, or inferred from the training split (:mod:`kexue.data.label_checks`).
    """

    model: str = "minilm"
    data: str = "stsb_en"
    loss: str = "cosent"
    pooling: str = "last-avg"
    max_length: int = 64
    scale: float = 5.0
    train_limit: int | None = None
    eval_limit: int | None = None
    extra_eval: tuple[str, ...] = ()
    eval_batch_size: int = 128
    eval_before: bool = True
    length_bucketing: bool = True
    scratch: ScratchModel = field(default_factory=ScratchModel)
    dev: str | None = None
    test: str | None = None
    split_ratio: float | None = None
    score_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.score_range is not None:
            self.score_range = (float(self.score_range[0]), float(self.score_range[1]))
            if not self.score_range[0] < self.score_range[1]:
                raise ConfigError(f"--score-range: expected LO < HI, got {self.score_range}")
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss: expected one of {', '.join(LOSSES)}, got {self.loss!r}")
        for name in ("train_limit", "eval_limit"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise ConfigError(f"--{name.replace('_', '-')}: expected an integer >= 2, got {value}")
        self.extra_eval = tuple(self.extra_eval)


class PairModel(nn.Module):
    """The module the trainer optimizes: the sentence encoder, plus the softmax head for ``--loss softmax``.

    Only the encoder is saved (``save_pretrained``): the Sentence-BERT head is a training device.
    """

    def __init__(self, encoder: SentenceEncoder, head: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Sentence vectors ``[2B, H]`` of a collated batch of ``B`` pairs (rows ``:B`` the first texts, ``B:``
        the second); with ``labels`` ``[B]`` and the softmax head, the head's Sentence-BERT loss (scalar) instead.

        Every parameter-dependent step of the loss runs here, so a ``DistributedDataParallel`` wrapper's forward
        sees the whole computation (its gradient-sync and unused-parameter bookkeeping).
        """
        emb = self.encoder(input_ids, attention_mask, token_type_ids)
        if labels is None or self.head is None:
            return emb
        return self.head(emb[: len(labels)], emb[len(labels):], labels.long())

    def save_pretrained(self, path: str | Path) -> None:
        """Save the encoder (backbone, tokenizer, pooling) into ``path``."""
        self.encoder.save_pretrained(path)


def cosine_scores(encoder: SentenceEncoder, pairs: Sequence[SentencePair], batch_size: int = 128) -> np.ndarray:
    """Cosine similarity ``[N]`` (float64) of each pair's two sentence vectors."""
    texts = sorted({t for p in pairs for t in (p.text_a, p.text_b)})
    index = {t: i for i, t in enumerate(texts)}
    vecs = encoder.encode(texts, batch_size=batch_size, normalize=True).astype(np.float64)
    a = vecs[[index[p.text_a] for p in pairs]]
    b = vecs[[index[p.text_b] for p in pairs]]
    return (a * b).sum(axis=1)


def evaluate_split(encoder: SentenceEncoder, pairs: Sequence[SentencePair], *, threshold: float | None = None,
                   batch_size: int = 128, where: str = "split") -> dict[str, float]:
    """Spearman x100 (and accuracy/F1/threshold for binary labels) of the encoder's cosines on ``pairs``.

    Args:
        threshold: for binary data, the threshold frozen on dev; ``None`` searches it on ``pairs`` (dev).
    """
    labels = split_labels(pairs, where)
    scores = cosine_scores(encoder, pairs, batch_size)
    binary = is_binary(labels)
    return evaluate_pairs(scores, labels, binary=binary, threshold=threshold if binary else None)


def build_encoder(cfg: STSConfig, train_texts: Sequence[str]) -> SentenceEncoder:
    """Load the encoder named by ``cfg.model``, or build a from-scratch one on ``train_texts``."""
    if cfg.model != SCRATCH:
        return SentenceEncoder.from_pretrained(cfg.model, pooling=cfg.pooling, max_length=cfg.max_length)
    backbone, tokenizer = build_backbone(cfg.model, train_texts, cfg.scratch, cfg.max_length)
    return SentenceEncoder(backbone, tokenizer, pooling=cfg.pooling, max_length=cfg.max_length)


def make_features(encoder: SentenceEncoder, pairs: Sequence[SentencePair]) -> list[dict[str, Any]]:
    """Tokenized training examples: ``{"a": ids..., "b": ids..., "label": float}`` per pair."""
    a = encoder.tokenize([p.text_a for p in pairs])
    b = encoder.tokenize([p.text_b for p in pairs])
    return [{"a": fa, "b": fb, "label": float(p.label)} for fa, fb, p in zip(a, b, pairs)]


def make_collate(pad_token_id: int) -> Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]:
    """Collate pairs into one padded batch of ``2B`` sentences (all ``a`` sides, then all ``b`` sides) and
    ``labels [B]``: one forward pass encodes both sides."""
    def collate(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = pad_batch([e["a"] for e in examples] + [e["b"] for e in examples], pad_token_id=pad_token_id)
        batch["labels"] = torch.tensor([e["label"] for e in examples], dtype=torch.float32)
        return batch
    return collate


def make_loss(cfg: STSConfig, score_range: tuple[float, float]
              ) -> Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]:
    """``compute_loss(model, batch)`` for the chosen loss; ``--loss mse`` maps ``score_range`` ``(low, high)`` onto
    cosine ``[0, 1]``. ``model`` is a :class:`PairModel`, possibly DDP-wrapped: it is called, not unwrapped."""
    def compute_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = batch["labels"]
        inputs = (batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        if cfg.loss == "softmax":
            return model(*inputs, labels=labels)
        emb = model(*inputs)
        u, v = emb[: len(labels)], emb[len(labels):]
        cos = torch.nn.functional.cosine_similarity(u.float(), v.float(), dim=-1)
        if cfg.loss == "mse":
            return cosine_mse_loss(cos, labels, score_range)
        return cosent_loss(cos, labels, scale=cfg.scale)
    return compute_loss


def make_head(cfg: STSConfig, encoder: SentenceEncoder, labels: np.ndarray) -> nn.Module | None:
    """The Sentence-BERT softmax head for ``--loss softmax`` (categorical integer labels only)."""
    if cfg.loss != "softmax":
        return None
    if not np.all(labels == np.round(labels)) or labels.min() < 0:
        raise ConfigError("--loss softmax: needs categorical labels (non-negative integers); this data has graded "
                          "scores, use --loss cosent or --loss mse")
    return SoftmaxLoss(encoder.hidden_size, int(labels.max()) + 1)


def train_sts(cfg: STSConfig, trainer_cfg: TrainerConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fine-tune on ``cfg.data``'s train split, keep the best dev Spearman, report dev/test before and after.

    Returns:
        (on rank 0; ``{}`` on the other ranks of a torchrun launch)
        ``{"before": {...}, "after": {...}, "extra": {...}, "best_dir": str, "train_seconds": float (training
        wall time without the dev evaluations), "optimizer_steps": int}``; also written to
        ``<output_dir>/results.json``.

    Raises:
        ConfigError: bad options or data without labels. DataFormatError: a malformed data line.
    """
    # data refusals first (reading is cheap): a refused run leaves nothing on disk, not even a locked empty folder
    splits = load_splits(cfg.data, with_train=True, train_limit=cfg.train_limit, eval_limit=cfg.eval_limit,
                         dev=cfg.dev, test=cfg.test, split_ratio=cfg.split_ratio, seed=trainer_cfg.seed,
                         score_range=cfg.score_range)
    prepare_run_dir(trainer_cfg, {"task": "sts", "sts": cfg}, log=log)  # refusals before any work
    log(f"{cfg.data}: train {len(splits.train)} pairs, dev {len(splits.dev) if splits.dev else '-'}, test "
        f"{len(splits.test) if splits.test else '-'}; scores {splits.score_range.describe()}"
        + (f"; dev and test cut from the file by --split-ratio {cfg.split_ratio:g}, seed {trainer_cfg.seed}"
           if cfg.split_ratio is not None else ""))
    if splits.dev is None:
        raise ConfigError(f"--data {cfg.data}: a labelled dev split is needed to select the best checkpoint")
    # --extra-eval data is read and checked now, not after training
    extra_splits = {name: load_splits(name, with_train=False, eval_limit=cfg.eval_limit) for name in cfg.extra_eval}
    train_labels = split_labels(splits.train, f"{cfg.data} train")
    texts = [t for p in splits.train for t in (p.text_a, p.text_b)]
    seed_everything(trainer_cfg.seed)  # --seed decides a scratch encoder's and the softmax head's initialisation
    encoder = build_encoder(cfg, texts)
    trainer_cfg.metric_for_best = trainer_cfg.metric_for_best or "spearman"
    model = PairModel(encoder, make_head(cfg, encoder, train_labels))
    features = make_features(encoder, splits.train)
    lengths = [max(len(f["a"]["input_ids"]), len(f["b"]["input_ids"])) for f in features]
    sampler = LengthBucketBatchSampler(lengths, trainer_cfg.batch_size, seed=trainer_cfg.seed,
                                       drop_last=trainer_cfg.drop_last)

    def batches(epoch: int, _generator: torch.Generator) -> list[list[int]]:
        sampler.set_epoch(epoch)
        return [b.tolist() for b in sampler.global_batches()]

    evaluate, eval_seconds = dev_evaluator(splits.dev, cfg.eval_batch_size, where=f"{cfg.data} dev")

    score_range = (splits.score_range.low, splits.score_range.high)
    # under torchrun: the backbone's pooler (and whatever else a pooling mode leaves out) gets no gradient; DDP
    # then leaves its .grad None, as a single process does
    trainer_cfg.find_unused_parameters = True
    trainer = Trainer(model, trainer_cfg, features, compute_loss=make_loss(cfg, score_range),
                      collate_fn=make_collate(encoder.tokenizer.pad_token_id), evaluate=evaluate,
                      batch_sampler=batches if cfg.length_bucketing else None,
                      run_config={"task": "sts", "sts": jsonable(asdict(cfg)),
                                  "data_splits": {"sources": splits.sources, "score_range": list(score_range),
                                                  "score_range_source": splits.score_range.source}})
    report = fit_and_evaluate(trainer, encoder, splits, cfg, log, eval_before=cfg.eval_before,
                              eval_seconds=eval_seconds)
    if report is None:
        return {}
    before, after, best, best_dir, train_seconds = report
    extra = {name: evaluate_all(best, extra_splits[name], cfg, log, f"transfer to {name}") for name in cfg.extra_eval}
    results = {"data": cfg.data, "loss": cfg.loss, "pooling": cfg.pooling, "model": cfg.model,
               "splits": {split: {"source": source, "pairs": len(getattr(splits, split) or [])}
                          for split, source in splits.sources.items()},
               "score_range": {"low": score_range[0], "high": score_range[1], "source": splits.score_range.source},
               "before": before, "after": after, "extra": extra, "best_dir": str(best_dir),
               "train_seconds": train_seconds, "optimizer_steps": trainer.state.global_step}
    (Path(trainer_cfg.output_dir) / "results.json").write_text(
        json.dumps(jsonable(results), indent=2, allow_nan=False), encoding="utf-8")  # NaN -> null: valid JSON
    return results


def dev_evaluator(dev: Sequence[SentencePair], batch_size: int, where: str
                  ) -> tuple[Callable[[nn.Module], dict[str, float]], list[float]]:
    """The Trainer's ``evaluate`` for a sentence-embedding recipe: :func:`evaluate_split` of ``model.encoder`` on
    ``dev``, timed. Returns ``(evaluate, eval_seconds)``; ``eval_seconds[0]`` accumulates the evaluation time (for
    :func:`fit_and_evaluate`, which subtracts it from the training time)."""
    eval_seconds = [0.0]

    def evaluate(m: nn.Module) -> dict[str, float]:
        start = time.perf_counter()
        metrics = evaluate_split(m.encoder, dev, batch_size=batch_size, where=where)
        eval_seconds[0] += time.perf_counter() - start
        return metrics

    return evaluate, eval_seconds


def fit_and_evaluate(trainer: Trainer, encoder: SentenceEncoder, splits: Splits, cfg: STSConfig,
                     log: Callable[[str], None], *, eval_before: bool, eval_seconds: list[float]
                     ) -> tuple[dict, dict, SentenceEncoder, Path, float] | None:
    """The sentence-embedding recipes' common run: evaluate ``encoder`` before training (when ``eval_before``),
    ``trainer.fit()``, then evaluate the best dev checkpoint (``best/``) on the same splits.

    Args:
        eval_seconds: one-element list the recipe's ``evaluate`` adds its time to (subtracted from the training
            time).

    Returns:
        ``(before, after, best_encoder, best_dir, train_seconds)`` on rank 0; ``None`` on the other ranks of a
        torchrun launch (only rank 0 evaluates and writes results).
    """
    main = is_main_process()
    before = evaluate_all(encoder, splits, cfg, log, "before training") if eval_before and main else {}
    start = time.perf_counter()
    trainer.fit()
    train_seconds = time.perf_counter() - start - eval_seconds[0]
    if not main:
        return None
    best_dir = Path(trainer.config.output_dir) / "best"
    best = SentenceEncoder.from_pretrained(best_dir) if (best_dir / "config.json").is_file() else encoder
    after = evaluate_all(best, splits, cfg, log, "after training (best dev checkpoint)")
    return before, after, best, best_dir, train_seconds


def evaluate_all(encoder: SentenceEncoder, splits: Splits, cfg: STSConfig, log: Callable[[str], None],
                 title: str) -> dict[str, dict[str, float]]:
    """Evaluate dev then test; for binary data the test threshold is the one found on dev.

    A ``whole``-file :class:`Splits` is evaluated once and reported under its file's path (never as dev or test).
    """
    out: dict[str, dict[str, float]] = {}
    if splits.whole is not None:
        path = splits.paths["whole"]
        metrics = evaluate_split(encoder, splits.whole, batch_size=cfg.eval_batch_size, where=path)
        binary = " (threshold searched on this file)" if "threshold" in metrics else ""
        log(f"{path} {title}, the whole file: {format_metrics(metrics)}{binary}")
        return {path: metrics}
    threshold = None
    for split in ("dev", "test"):
        pairs = getattr(splits, split)
        if pairs is None:
            continue
        metrics = evaluate_split(encoder, pairs, threshold=threshold, batch_size=cfg.eval_batch_size,
                                 where=f"{splits.name} {split}")
        threshold = metrics.get("threshold", threshold) if split == "dev" else threshold
        out[split] = metrics
    missing = [split for split in ("dev", "test") if split not in out]
    log(f"{splits.name} {title}: " + "; ".join(f"{split} " + format_metrics(m) for split, m in out.items())
        + (f" ({', '.join(missing)}: no labelled split here, not evaluated)" if missing else ""))
    return out


def format_metrics(metrics: dict[str, float]) -> str:
    """``spearman 81.23, accuracy 85.10, f1 80.02 @ 0.712`` style summary."""
    parts = [f"spearman {metrics['spearman']:.2f}"]
    if "accuracy" in metrics:
        parts.append(f"accuracy {metrics['accuracy']:.2f}, f1 {metrics['f1']:.2f} @ {metrics['threshold']:.3f}")
    return ", ".join(parts)


def eval_sts(model: str, data: str, *, eval_limit: int | None = None, batch_size: int = 128,
             pooling: str | None = None, score_range: tuple[float, float] | None = None,
             log: Callable[[str], None] = print, whitening: str | None = None,
             fit_on: str | None = None) -> dict[str, dict[str, float]]:
    """Evaluate a saved encoder (run folder, checkpoint or alias) on ``data``'s dev and test splits, or on a single
    file as a whole (reported under its path).

    Args:
        score_range: ``--score-range``: check every score against it (registered datasets use their own range).
        whitening / fit_on: ``--whitening none|full|K`` and ``--fit-on task|train|FILE``
            (:func:`kexue.tasks.whitening.choose_whitening`); unset = the whitening saved with the model, if any.
            The results then hold a ``"whitening"`` entry naming its fitting data and protocol.

    Raises:
        ConfigError, DataFormatError: as :func:`load_splits` (checked before the model is loaded).
    """
    splits = load_splits(data, with_train=False, eval_limit=eval_limit, score_range=score_range)
    encoder = SentenceEncoder.from_pretrained(model, pooling=pooling)
    cfg = STSConfig(model=model, data=data, pooling=encoder.pooling, eval_batch_size=batch_size)
    if whitening is None and fit_on is None and encoder.whitening is None:
        return evaluate_all(encoder, splits, cfg, log, "evaluation")
    from kexue.tasks.whitening import choose_whitening, whitening_report

    encoder.whitening = choose_whitening(encoder, whitening, fit_on, data, batch_size=batch_size, log=log)
    return {**evaluate_all(encoder, splits, cfg, log, "evaluation"), "whitening": whitening_report(encoder.whitening)}


def known_datasets() -> list[str]:
    """Registered sentence-pair dataset names."""
    return [name for name, info in DATASETS.items() if info.task == "pairs"]

