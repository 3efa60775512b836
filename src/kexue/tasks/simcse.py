"""The unsupervised SimCSE recipe: fine-tune a sentence encoder on raw sentences with dropout as augmentation.

Each batch holds ``B`` distinct sentences, encoded twice in one train-mode forward pass (the batch repeated:
rows ``:B`` and ``B:`` get independent dropout masks), and trained with the in-batch InfoNCE of
:mod:`kexue.losses.simcse` at scale 20. The sentences are deduplicated first (by their token ids after
truncation), so a batch never holds the same sentence twice: a repeat would be a false negative. Evaluation
during training is the Spearman of an STS dataset's dev split (``--eval-data``), which selects ``best/``.

Sources: https://arxiv.org/abs/2104.08821 (SimCSE), "中文任务还是SOTA吗?我们给SimCSE补充了一些实验",
https://kexue.fm/archives/8348 (Chinese settings: batch 64, lr 1e-5, dropout 0.3, 10k sentences, 1 epoch). Spec §3.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kexue.data.collate import pad_batch
from kexue.data.registry import DATASETS
from kexue.embeddings import SentenceEncoder
from kexue.errors import ConfigError
from kexue.losses.simcse import NEGATIVES, simcse_loss
from kexue.nn.attention import MultiHeadAttention
from kexue.tasks.common import SCRATCH, ScratchModel, build_backbone, jsonable
from kexue.tasks.sts import STSConfig, dev_evaluator, fit_and_evaluate, load_splits
from kexue.tasks.whitening import load_sentences
from kexue.train import Trainer, TrainerConfig, prepare_run_dir
from kexue.train.batching import random_batches


@dataclass
class SimCSEConfig:
    """Options of ``kexue train simcse`` (the trainer's options live in :class:`kexue.train.TrainerConfig`).

    Args:
        model: ``minilm``, a checkpoint folder, a run folder, or ``scratch``.
        data: raw sentences: a text file (one per line), a name under ``$KEXUE_DATA`` whose folder holds one
            ``.txt`` (``wiki1m_en_prefix``), or a pair dataset (both sides of its training split; labels unread).
        eval_data: the STS dataset whose dev split is evaluated during training (and dev/test before and after);
            default ``data`` when it is a pair dataset with a labelled dev split, else ``stsb_en``.
        pooling: ``cls`` (default, the paper's), ``pooler``, ``last-avg`` or ``first-last-avg``.
        dropout: ``--dropout``: the hidden and attention dropout during training (``None`` = the model's own; the
            Chinese post uses 0.3, the paper 0.1). Must be > 0: dropout is the augmentation.
        negatives: ``cross-view`` (paper, sentence-transformers) or ``with-same-view`` (Su's code).
        scale: ``1 / tau`` (20).
        train_limit: use only the first N distinct sentences (after a seeded shuffle: the post draws 10,000).
        eval_limit: only the first N pairs of each evaluated split.
    """

    model: str = "minilm"
    data: str = "wiki1m_en_prefix"
    eval_data: str | None = None
    pooling: str = "cls"
    max_length: int = 64
    dropout: float | None = None
    negatives: str = "cross-view"
    scale: float = 20.0
    train_limit: int | None = None
    eval_limit: int | None = None
    eval_batch_size: int = 128
    eval_before: bool = True
    scratch: ScratchModel = field(default_factory=ScratchModel)

    def __post_init__(self) -> None:
        if self.negatives not in NEGATIVES:
            raise ConfigError(f"--negatives: expected one of {', '.join(NEGATIVES)}, got {self.negatives!r}")
        if self.dropout is not None and not 0.0 < self.dropout < 1.0:
            raise ConfigError(f"--dropout: expected a probability in (0, 1) (dropout is SimCSE's augmentation), "
                              f"got {self.dropout}")
        if self.train_limit is not None and self.train_limit < 2:
            raise ConfigError(f"--train-limit: expected an integer >= 2, got {self.train_limit}")
        if self.eval_limit is not None and self.eval_limit < 2:
            raise ConfigError(f"--eval-limit: expected an integer >= 2, got {self.eval_limit}")
        if not self.scale > 0:
            raise ConfigError(f"--scale: expected a number > 0, got {self.scale}")


def set_dropout(module: nn.Module, p: float) -> int:
    """Set every dropout of ``module`` to ``p``: ``nn.Dropout`` layers, kexue's attention-probability dropout, and a
    transformers self-attention's ``dropout_prob``; returns how many were set.

    Raises:
        ConfigError: ``p`` outside ``[0, 1)`` (``--dropout``).
    """
    if not 0.0 <= p < 1.0:
        raise ConfigError(f"--dropout: expected a probability in [0, 1), got {p}")
    count = 0
    for sub in module.modules():
        if isinstance(sub, nn.Dropout):
            sub.p = p
            count += 1
        elif isinstance(sub, MultiHeadAttention):
            sub.dropout = p
            count += 1
        elif isinstance(getattr(sub, "dropout_prob", None), float):
            sub.dropout_prob = p
            count += 1
    return count


def distinct_features(encoder: SentenceEncoder, sentences: list[str]) -> tuple[list[dict[str, list[int]]], int]:
    """Tokenized sentences with repeats removed by token ids (two texts equal after truncation count once);
    returns ``(features, repeats dropped)``."""
    seen: set[tuple[int, ...]] = set()
    out = []
    for feature in encoder.tokenize(sentences):
        key = tuple(feature["input_ids"])
        if key not in seen:
            seen.add(key)
            out.append(feature)
    return out, len(sentences) - len(out)


class SimCSEModel(nn.Module):
    """The trained module: the encoder, run on the batch twice over (``[2B, L]`` -> ``[2B, H]``).

    Only the encoder is saved.
    """

    def __init__(self, encoder: SentenceEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Sentence vectors ``[2B, H]`` of the repeated batch (rows ``i`` and ``B + i``: two dropout views)."""
        return self.encoder(input_ids, attention_mask, token_type_ids)

    def save_pretrained(self, path: str | Path) -> None:
        """Save the encoder (backbone, tokenizer, pooling) into ``path``."""
        self.encoder.save_pretrained(path)


def make_collate(pad_token_id: int) -> Callable[[list[dict[str, list[int]]]], dict[str, torch.Tensor]]:
    """Collate ``B`` sentences into one padded batch of ``2B`` rows: the sentences, then the same sentences again."""
    def collate(features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        return pad_batch(list(features) + list(features), pad_token_id=pad_token_id)
    return collate


def make_loss(cfg: SimCSEConfig, check_views: bool) -> Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]:
    """``compute_loss(model, batch)``: the SimCSE loss of the two halves of the model's ``[2B, H]`` output.

    With ``check_views`` (dropout on) identical halves in train mode raise ConfigError: dropout is inactive.
    """
    def compute_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        emb = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        half = emb.shape[0] // 2
        h0, h1 = emb[:half], emb[half:]
        if check_views and model.training and torch.equal(h0, h1):
            raise ConfigError("train simcse: the two dropout passes gave identical vectors, so dropout is inactive "
                              "in this model; pass --dropout 0.1 (or the post's 0.3)")
        return simcse_loss(h0.float(), h1.float(), cfg.scale, cfg.negatives)
    return compute_loss


def batches_without_singletons(num: int, batch_size: int, generator: torch.Generator,
                               drop_last: bool) -> list[list[int]]:
    """:func:`kexue.train.batching.random_batches`, with a last batch of one sentence (no negative) merged into
    the batch before it."""
    batches = random_batches(num, batch_size, generator, drop_last)
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches[-2].extend(batches.pop())
    return batches


def default_eval_data(cfg: SimCSEConfig) -> str:
    """``cfg.eval_data``, else ``cfg.data`` when it is a registered pair dataset with a dev split, else ``stsb_en``."""
    if cfg.eval_data:
        return cfg.eval_data
    info = DATASETS.get(cfg.data)
    if info is not None and info.task == "pairs" and "dev" in info.splits:
        return cfg.data
    return "stsb_en"


def train_simcse(cfg: SimCSEConfig, trainer_cfg: TrainerConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train unsupervised SimCSE on ``cfg.data``'s sentences; keep the best dev Spearman on ``eval_data``.

    Returns:
        (on rank 0; ``{}`` on the others) ``{"before", "after", "best_dir", "sentences", "repeats_dropped",
        "train_seconds", "optimizer_steps", ...}``, also written to ``<output_dir>/results.json``.

    Raises:
        ConfigError: bad options, fewer than 2 distinct sentences, an evaluation dataset without a labelled dev
            split, or inactive dropout. DataFormatError: a malformed data line.
    """
    eval_data = default_eval_data(cfg)
    sentences = load_sentences(cfg.data)  # data refusals before the run folder exists
    splits = load_splits(eval_data, with_train=False, eval_limit=cfg.eval_limit)
    if splits.dev is None:
        raise ConfigError(f"--eval-data {eval_data}: a labelled dev split is needed to select the best checkpoint")
    prepare_run_dir(trainer_cfg, {"task": "simcse", "simcse": cfg}, log=log)
    generator = torch.Generator().manual_seed(trainer_cfg.seed)
    order = torch.randperm(len(sentences), generator=generator).tolist()
    shuffled = list(dict.fromkeys(sentences[i] for i in order))
    if cfg.model != SCRATCH:
        encoder = SentenceEncoder.from_pretrained(cfg.model, pooling=cfg.pooling, max_length=cfg.max_length)
    else:
        backbone, tokenizer = build_backbone(cfg.model, shuffled, cfg.scratch, cfg.max_length)
        encoder = SentenceEncoder(backbone, tokenizer, pooling=cfg.pooling, max_length=cfg.max_length)
    encoder.whitening = None  # SimCSE trains the raw vectors; a whitening of the starting model no longer fits
    features, repeats = distinct_features(encoder, shuffled)
    features = features if cfg.train_limit is None else features[:cfg.train_limit]
    if len(features) < 2:
        raise ConfigError(f"--data {cfg.data}: needs at least 2 distinct sentences, found {len(features)}")
    if cfg.dropout is not None:
        set_dropout(encoder, cfg.dropout)
    log(f"{cfg.data}: {len(features)} distinct sentences ({len(sentences) - len(shuffled) + repeats} repeats "
        f"dropped); negatives {cfg.negatives}, scale {cfg.scale:g}, dropout "
        f"{cfg.dropout if cfg.dropout is not None else 'as the model'}; evaluating on {eval_data} dev")
    sts_cfg = STSConfig(model=cfg.model, data=eval_data, pooling=cfg.pooling, eval_batch_size=cfg.eval_batch_size)
    evaluate, eval_seconds = dev_evaluator(splits.dev, cfg.eval_batch_size, where=f"{eval_data} dev")

    trainer_cfg.metric_for_best = trainer_cfg.metric_for_best or "spearman"
    trainer_cfg.find_unused_parameters = True  # the pooler (and what a pooling mode leaves out) gets no gradient
    trainer = Trainer(SimCSEModel(encoder), trainer_cfg, features, compute_loss=make_loss(cfg, cfg.dropout != 0),
                      collate_fn=make_collate(encoder.tokenizer.pad_token_id), evaluate=evaluate,
                      batch_sampler=lambda epoch, gen: batches_without_singletons(
                          len(features), trainer_cfg.batch_size, gen, trainer_cfg.drop_last),
                      run_config={"task": "simcse", "simcse": jsonable(asdict(cfg)), "eval_data": eval_data,
                                  "sentences": len(features)})
    report = fit_and_evaluate(trainer, encoder, splits, sts_cfg, log, eval_before=cfg.eval_before,
                              eval_seconds=eval_seconds)
    if report is None:
        return {}
    before, after, _best, best_dir, train_seconds = report
    results = {"data": cfg.data, "eval_data": eval_data, "model": cfg.model, "pooling": cfg.pooling,
               "negatives": cfg.negatives, "dropout": cfg.dropout, "sentences": len(features),
               "repeats_dropped": len(sentences) - len(features) if cfg.train_limit is None else None,
               "before": before, "after": after, "best_dir": str(best_dir), "train_seconds": train_seconds,
               "optimizer_steps": trainer.state.global_step}
    (Path(trainer_cfg.output_dir) / "results.json").write_text(
        json.dumps(jsonable(results), indent=2, allow_nan=False), encoding="utf-8")
    return results
