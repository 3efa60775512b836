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
from kexue.data.registry import DATASETS, canonical_split, load_pairs, resolve_dataset
from kexue.embeddings import SentenceEncoder
from kexue.errors import ConfigError
from kexue.losses.cosent import cosent_loss
from kexue.losses.sbert import SoftmaxLoss, cosine_mse_loss
from kexue.metrics.sts import evaluate_pairs
from kexue.tasks.common import SCRATCH, ScratchModel, build_backbone, jsonable
from kexue.train import Trainer, TrainerConfig
from kexue.train.distributed import is_main_process, unwrap_model

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
        scale: CoSENT's λ.
        train_limit / eval_limit: use only the first N pairs of train / of each evaluated split (quick runs).
        extra_eval: other datasets whose dev/test splits are evaluated after training (e.g. afqmc -> atec, bq ...).
        eval_batch_size: sentences per forward pass when encoding for evaluation.
        eval_before: also evaluate dev/test before training (the zero-shot numbers).
        length_bucketing: batch pairs of similar length (less padding, faster); ``False`` = plain shuffled
            batches. CoSENT only compares pairs inside a batch, so bucketing changes what it sees.
    """

    model: str = "minilm"
    data: str = "stsb_en"
    loss: str = "cosent"
    pooling: str = "last-avg"
    max_length: int = 64
    scale: float = 20.0
    train_limit: int | None = None
    eval_limit: int | None = None
    extra_eval: tuple[str, ...] = ()
    eval_batch_size: int = 128
    eval_before: bool = True
    length_bucketing: bool = True
    scratch: ScratchModel = field(default_factory=ScratchModel)

    def __post_init__(self) -> None:
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

    def save_pretrained(self, path: str | Path) -> None:
        """Save the encoder (backbone, tokenizer, pooling) into ``path``."""
        self.encoder.save_pretrained(path)


def split_labels(pairs: Sequence[SentencePair], where: str) -> np.ndarray:
    """Labels of ``pairs`` as float64 ``[N]``; raises ConfigError if any pair is unlabelled."""
    if any(p.label is None for p in pairs):
        raise ConfigError(f"{where}: the split has no labels, so it cannot be trained or evaluated on")
    return np.asarray([p.label for p in pairs], dtype=np.float64)


def is_binary(labels: np.ndarray) -> bool:
    """Whether the labels are all 0/1."""
    return bool(np.isin(labels, (0.0, 1.0)).all())


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


@dataclass
class Splits:
    """The pairs of one dataset: train (may be empty when only evaluating), dev and test (``None`` if absent
    or unlabelled)."""

    name: str
    train: list[SentencePair]
    dev: list[SentencePair] | None
    test: list[SentencePair] | None


def _limit(pairs: list[SentencePair], n: int | None) -> list[SentencePair]:
    return pairs if n is None else pairs[:n]


def load_splits(data: str, *, with_train: bool, train_limit: int | None = None,
                eval_limit: int | None = None) -> Splits:
    """Read the splits of ``data``; a split that is missing or unlabelled here is ``None`` (never silently
    used: the report says it was not evaluated)."""
    def get(split: str) -> list[SentencePair] | None:
        if data in DATASETS:
            if canonical_split(split) not in DATASETS[data].splits:
                return None
            resolved = resolve_dataset(data, split)  # a missing folder or file is an error, not "no split"
        else:
            try:
                resolved = resolve_dataset(data, split)
            except ConfigError:  # a user folder without this split
                return None
        if resolved.labelled is False:
            return None
        pairs = load_pairs(data, split)
        if not pairs or any(p.label is None for p in pairs):
            return None
        return _limit(pairs, eval_limit)

    train: list[SentencePair] = []
    if with_train:
        train = _limit(load_pairs(data, "train"), train_limit)
        split_labels(train, f"{data} train")
    return Splits(str(data), train, get("dev"), get("test"))


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


def make_loss(cfg: STSConfig, label_max: float) -> Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]:
    """``compute_loss(model, batch)`` for the chosen loss."""
    def compute_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inner = unwrap_model(model)
        labels = batch["labels"]
        emb = inner.encoder(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        u, v = emb[: len(labels)], emb[len(labels):]
        if cfg.loss == "softmax":
            return inner.head(u, v, labels.long())
        cos = torch.nn.functional.cosine_similarity(u.float(), v.float(), dim=-1)
        if cfg.loss == "mse":
            return cosine_mse_loss(cos, labels, (0.0, label_max))
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
    splits = load_splits(cfg.data, with_train=True, train_limit=cfg.train_limit, eval_limit=cfg.eval_limit)
    if splits.dev is None:
        raise ConfigError(f"--data {cfg.data}: a labelled dev split is needed to select the best checkpoint")
    train_labels = split_labels(splits.train, f"{cfg.data} train")
    texts = [t for p in splits.train for t in (p.text_a, p.text_b)]
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

    eval_seconds = [0.0]

    def evaluate(m: nn.Module) -> dict[str, float]:
        start = time.perf_counter()
        metrics = evaluate_split(m.encoder, splits.dev, batch_size=cfg.eval_batch_size, where=f"{cfg.data} dev")
        eval_seconds[0] += time.perf_counter() - start
        return metrics

    trainer = Trainer(model, trainer_cfg, features, compute_loss=make_loss(cfg, float(train_labels.max())),
                      collate_fn=make_collate(encoder.tokenizer.pad_token_id), evaluate=evaluate,
                      batch_sampler=batches if cfg.length_bucketing else None,
                      run_config={"task": "sts", "sts": jsonable(asdict(cfg))})
    main = is_main_process()  # under torchrun only rank 0 evaluates and writes results
    before = evaluate_all(encoder, splits, cfg, log, "before training") if cfg.eval_before and main else {}
    start = time.perf_counter()
    trainer.fit()
    train_seconds = time.perf_counter() - start - eval_seconds[0]
    if not main:
        return {}
    best_dir = Path(trainer_cfg.output_dir) / "best"
    best = SentenceEncoder.from_pretrained(best_dir) if (best_dir / "config.json").is_file() else encoder
    after = evaluate_all(best, splits, cfg, log, "after training (best dev checkpoint)")
    extra = {name: evaluate_all(best, load_splits(name, with_train=False, eval_limit=cfg.eval_limit), cfg, log,
                                f"transfer to {name}")
             for name in cfg.extra_eval}
    results = {"data": cfg.data, "loss": cfg.loss, "pooling": cfg.pooling, "model": cfg.model,
               "before": before, "after": after, "extra": extra, "best_dir": str(best_dir),
               "train_seconds": train_seconds, "optimizer_steps": trainer.state.global_step}
    (Path(trainer_cfg.output_dir) / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results


def evaluate_all(encoder: SentenceEncoder, splits: Splits, cfg: STSConfig, log: Callable[[str], None],
                 title: str) -> dict[str, dict[str, float]]:
    """Evaluate dev then test; for binary data the test threshold is the one found on dev."""
    out: dict[str, dict[str, float]] = {}
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
             pooling: str | None = None, log: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Evaluate a saved encoder (run folder, checkpoint or alias) on ``data``'s dev and test splits."""
    encoder = SentenceEncoder.from_pretrained(model, pooling=pooling)
    splits = load_splits(data, with_train=False, eval_limit=eval_limit)
    cfg = STSConfig(model=model, data=data, pooling=encoder.pooling, eval_batch_size=batch_size)
    return evaluate_all(encoder, splits, cfg, log, "evaluation")


def known_datasets() -> list[str]:
    """Registered sentence-pair dataset names."""
    return [name for name, info in DATASETS.items() if info.task == "pairs"]

