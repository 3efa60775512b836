"""The SimBERT / RoFormer-Sim recipe: one Transformer that generates paraphrases and gives retrieval vectors.

A batch of ``n`` similar pairs is ``2n`` UniLM rows (``[CLS] A [SEP] B [SEP]`` and ``[CLS] B [SEP] A [SEP]``
adjacent, :mod:`kexue.tasks.simbert_data`). One forward pass under the UniLM mask gives both the next-token logits
(generation loss on the target tokens, :func:`kexue.tasks.seq2seq.seq2seq_loss`) and the ``[CLS]`` state, which the
mask keeps independent of the target: the sentence vector of the source is the pooler Dense with linear activation
on it. Loss = ``L_gen + L_sim`` (in-batch, scale 30, :func:`kexue.losses.simbert.simbert_similarity_loss`), or with
``--teacher`` the v2 distillation ``L_gen + 100·mean((C_u - C_v)²)`` against the teacher's cosine matrix of the
rows' source sentences (teacher vectors precomputed once: the teacher is frozen). ``--noise-probability 0.5`` is
v2's BART-style whole-word noise on the source. ``best/`` is the dev Spearman of ``--eval-data`` with the pooler
vectors; the saved folder is at once a seq2seq model (``kexue generate``, ``kexue similar``) and a sentence encoder
with pooling ``pooler`` (``kexue encode``, ``eval sts``, ``similarity``, ``search``).

Sources: https://kexue.fm/archives/7427 (SimBERT), https://kexue.fm/archives/8454 (RoFormer-Sim); spec §4.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kexue.data.masking import MaskingConfig
from kexue.data.tokenization import Tokenizer
from kexue.embeddings import SentenceEncoder
from kexue.errors import ConfigError
from kexue.losses.simbert import DISTILL_WEIGHT, SIMBERT_SCALE, cosine_matrix_distill_loss, simbert_similarity_loss
from kexue.models import Transformer
from kexue.models.auto import load_encoder
from kexue.tasks.common import ScratchModel, jsonable
from kexue.tasks.seq2seq import SETTINGS_FILE, load_seq2seq_backbone, seq2seq_loss
from kexue.tasks.simbert_data import SimBERTCollator, encode_sentences, load_similar_pairs
from kexue.tasks.simcse import set_dropout
from kexue.tasks.sts import STSConfig, dev_evaluator, fit_and_evaluate, load_splits
from kexue.train import Trainer, TrainerConfig, prepare_run_dir


@dataclass
class SimBERTConfig:
    """Options of ``kexue train simbert`` (the trainer's live in :class:`kexue.train.TrainerConfig`).

    Args:
        model: a BERT / RoFormer / RoFormerV2 checkpoint kexue's Transformer loads, an alias (``kexue-zh-mini``),
            a run folder or ``scratch``.
        data: similar pairs (:func:`kexue.tasks.simbert_data.load_similar_pairs`).
        eval_data: the STS / matching dataset whose dev Spearman selects ``best/`` (never ``lcqmc`` after
            ``simclue_sample``: its pairs overlap).
        max_length: tokens per sentence, special tokens excluded (v1: 32, v2: 64).
        scale: cosine scale of the similarity loss (v1 30, v2 20).
        noise_probability: share of rows whose source gets whole-word noise (v2: 0.5; 0 = off).
        teacher: a sentence encoder whose cosine matrix is distilled (v2); replaces the similarity loss.
        distill_weight: λ (100). dropout: hidden and attention dropout while training (v2: 0.2; None = the model's).
        train_limit / eval_limit: first N pairs / N pairs per evaluated split.
    """

    model: str = "scratch"
    data: str = "simclue_sample"
    eval_data: str = "stsb_zh"
    max_length: int = 32
    scale: float = SIMBERT_SCALE
    noise_probability: float = 0.0
    teacher: str | None = None
    distill_weight: float = DISTILL_WEIGHT
    dropout: float | None = None
    train_limit: int | None = None
    eval_limit: int | None = None
    eval_batch_size: int = 128
    eval_before: bool = True
    scratch: ScratchModel = field(default_factory=ScratchModel)

    def __post_init__(self) -> None:
        if self.max_length < 1:
            raise ConfigError(f"--max-length: expected an integer >= 1, got {self.max_length}")
        if not self.scale > 0:
            raise ConfigError(f"--scale: expected a number > 0, got {self.scale}")
        if not 0.0 <= self.noise_probability <= 1.0:
            raise ConfigError(f"--noise-probability: expected a value in [0, 1], got {self.noise_probability}")
        if not self.distill_weight > 0:
            raise ConfigError(f"--distill-weight: expected a number > 0, got {self.distill_weight}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"--dropout: expected a probability in [0, 1), got {self.dropout}")
        for flag, value in (("--train-limit", self.train_limit), ("--eval-limit", self.eval_limit)):
            if value is not None and value < 2:
                raise ConfigError(f"{flag}: expected an integer >= 2, got {value}")
        if self.eval_data == "lcqmc" and "simclue_sample" in self.data.split(","):
            raise ConfigError("--eval-data lcqmc: simclue_sample's pairs overlap LCQMC (its test_public holds all "
                              "of LCQMC test); evaluate on another set")


def ensure_pooler(model: Transformer) -> Transformer:
    """``model`` itself if it has a pooler, else a copy with a new (randomly initialised) pooler Dense.

    Raises:
        ConfigError: adding the pooler changed other keys (a bug).
    """
    if model.pooler is not None:
        return model
    with_pooler = Transformer(dataclasses.replace(model.config, pooler=True))
    missing, unexpected = with_pooler.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not k.startswith("pooler.") for k in missing):
        raise ConfigError(f"adding a pooler changed the backbone's keys: missing {missing}, unexpected {unexpected}")
    return with_pooler


class SimBERTModel(nn.Module):
    """A Transformer with MLM head and pooler under the UniLM mask: ids ``[B, L]`` -> ``(logits [B, L, V],
    vectors [B, H])``, the vectors being ``pooler.dense(h[CLS])`` (linear, no tanh).

    Saved as the backbone (Hugging Face layout), the tokenizer, ``seq2seq.json`` (input limits for decoding) and
    ``kexue_encoder.json`` (pooling ``pooler``), so that :class:`SentenceEncoder` and the seq2seq tools load it.
    """

    def __init__(self, backbone: Transformer, tokenizer: Tokenizer, max_length: int) -> None:
        super().__init__()
        if backbone.mlm_head is None or backbone.pooler is None:
            raise ConfigError("SimBERTModel needs a Transformer with an MLM head and a pooler")
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.max_length = max_length

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(next-token logits [B, L, V], [CLS] pooler vectors [B, H])`` of UniLM rows."""
        out = self.backbone(input_ids, attention_mask, token_type_ids, mask_kind="unilm")
        return out.mlm_logits, self.backbone.pooler.dense(out.last_hidden_state[:, 0])

    @property
    def encoder(self) -> SentenceEncoder:
        """A :class:`SentenceEncoder` over the same backbone (pooling ``pooler``; shares the weights)."""
        return SentenceEncoder(self.backbone, self.tokenizer, pooling="pooler", max_length=self.max_length + 2)

    def save_pretrained(self, path: str | Path) -> None:
        """Write backbone, tokenizer, ``seq2seq.json`` and ``kexue_encoder.json`` into ``path``."""
        path = Path(path)
        self.encoder.save_pretrained(path)
        settings = {"max_source_length": self.max_length, "max_target_length": self.max_length}
        (path / SETTINGS_FILE).write_text(json.dumps(settings, indent=2), encoding="utf-8")

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "SimBERTModel":
        """Load a saved model (a folder, or a run folder's ``best/``), in eval mode.

        Raises:
            ConfigError: not a kexue Transformer, or no pooler (not a SimBERT model). CheckpointError: bad weights.
        """
        from kexue.hub import resolve_model_path

        folder = resolve_model_path(path)
        backbone, kind = load_encoder(folder)
        if kind != "kexue" or backbone.mlm_head is None or backbone.pooler is None:
            raise ConfigError(f"--model {path}: {folder} is not a SimBERT model (a BERT / RoFormer / RoFormerV2 "
                              f"with MLM head and pooler weights); train one with `kexue train simbert`")
        tokenizer = Tokenizer.from_pretrained(folder)
        settings_file = folder / SETTINGS_FILE
        settings = json.loads(settings_file.read_text(encoding="utf-8")) if settings_file.is_file() else {}
        return cls(backbone, tokenizer, int(settings.get("max_source_length", 64))).eval()


def make_loss(cfg: SimBERTConfig, teacher_vectors: torch.Tensor | None
              ) -> Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]:
    """``compute_loss(model, batch)``: ``L_gen + L_sim``, or ``L_gen + L_distill`` with teacher vectors
    ``[num_sentences, d]`` indexed by the batch's ``source_index``."""
    def compute_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits, vectors = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        gen = seq2seq_loss(logits, batch)
        if teacher_vectors is None:
            return gen + simbert_similarity_loss(vectors.float(), cfg.scale)
        teacher = teacher_vectors.to(vectors.device)[batch["source_index"]]
        return gen + cosine_matrix_distill_loss(teacher, vectors.float(), cfg.distill_weight)
    return compute_loss


def build_model(cfg: SimBERTConfig, texts: list[str], log: Callable[[str], None]) -> SimBERTModel:
    """The model ``--model`` names, with MLM head and pooler (new ones are initialised and logged)."""
    backbone, tokenizer = load_seq2seq_backbone(cfg.model, texts, cfg.scratch, 2 * cfg.max_length + 3, log)
    if backbone.pooler is None:
        log("the checkpoint has no pooler: a new pooler Dense is initialised")
    return SimBERTModel(ensure_pooler(backbone), tokenizer, cfg.max_length)


def train_simbert(cfg: SimBERTConfig, trainer_cfg: TrainerConfig, log: Callable[[str], None] = print
                  ) -> dict[str, Any]:
    """Train SimBERT on ``cfg.data``'s pairs; keep the best dev Spearman of ``cfg.eval_data``.

    Returns:
        (rank 0; ``{}`` elsewhere) ``{"data", "model", "pairs", "before", "after", "best_dir", "train_seconds",
        "optimizer_steps", ...}``, also written to ``<output_dir>/results.json``.
    Raises:
        ConfigError: bad options, fewer than 2 pairs, an evaluation set without a labelled dev split.
        DataFormatError: a malformed data line.
    """
    pairs = load_similar_pairs(cfg.data)  # data refusals before the run folder exists
    pairs = pairs if cfg.train_limit is None else pairs[:cfg.train_limit]
    if len(pairs) < 2:
        raise ConfigError(f"--data {cfg.data}: needs at least 2 pairs (in-batch negatives), found {len(pairs)}")
    splits = load_splits(cfg.eval_data, with_train=False, eval_limit=cfg.eval_limit)
    if splits.dev is None:
        raise ConfigError(f"--eval-data {cfg.eval_data}: a labelled dev split is needed to select the best checkpoint")
    teacher = SentenceEncoder.from_pretrained(cfg.teacher) if cfg.teacher else None
    prepare_run_dir(trainer_cfg, {"task": "simbert", "simbert": cfg}, log=log)
    sentences = list(dict.fromkeys(s for pair in pairs for s in pair))
    torch.manual_seed(trainer_cfg.seed)  # a scratch model's and new heads' initialisation
    model = build_model(cfg, sentences, log)
    if cfg.dropout is not None:
        set_dropout(model, cfg.dropout)
    encoded = encode_sentences(model.tokenizer, sentences, cfg.max_length)
    position = {s: i for i, s in enumerate(sentences)}
    features = [(encoded[position[a]], encoded[position[b]]) for a, b in pairs]
    teacher_vectors = None
    if teacher is not None:
        teacher_vectors = torch.from_numpy(teacher.encode(sentences, batch_size=cfg.eval_batch_size))
    log(f"{cfg.data}: {len(pairs)} pairs ({2 * len(pairs)} rows per epoch), {len(sentences)} distinct sentences; "
        + (f"distillation from {cfg.teacher} (weight {cfg.distill_weight:g})" if teacher is not None
           else f"similarity scale {cfg.scale:g}")
        + f", noise {cfg.noise_probability:g}; evaluating on {cfg.eval_data} dev")
    collate = SimBERTCollator(model.tokenizer, cfg.noise_probability, MaskingConfig(),
                              torch.Generator().manual_seed(trainer_cfg.seed))
    sts_cfg = STSConfig(model=cfg.model, data=cfg.eval_data, pooling="pooler", eval_batch_size=cfg.eval_batch_size)
    evaluate, eval_seconds = dev_evaluator(splits.dev, cfg.eval_batch_size, where=f"{cfg.eval_data} dev")
    trainer_cfg.metric_for_best = trainer_cfg.metric_for_best or "spearman"
    trainer_cfg.find_unused_parameters = True
    trainer = Trainer(model, trainer_cfg, features, compute_loss=make_loss(cfg, teacher_vectors), collate_fn=collate,
                      evaluate=evaluate, run_config={"task": "simbert", "simbert": jsonable(asdict(cfg)),
                                                     "pairs": len(pairs)})
    report = fit_and_evaluate(trainer, model.encoder, splits, sts_cfg, log, eval_before=cfg.eval_before,
                              eval_seconds=eval_seconds)
    if report is None:
        return {}
    before, after, _best, best_dir, train_seconds = report
    results = {"data": cfg.data, "eval_data": cfg.eval_data, "model": cfg.model, "pairs": len(pairs),
               "teacher": cfg.teacher, "noise_probability": cfg.noise_probability, "before": before, "after": after,
               "best_dir": str(best_dir), "train_seconds": train_seconds,
               "optimizer_steps": trainer.state.global_step}
    (Path(trainer_cfg.output_dir) / "results.json").write_text(
        json.dumps(jsonable(results), indent=2, allow_nan=False), encoding="utf-8")
    return results
