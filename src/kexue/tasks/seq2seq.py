"""The UniLM seq2seq recipe: generate text with one BERT-style Transformer through the UniLM attention mask.

Each example is ``[CLS] source [SEP] target [SEP]`` with segment ids 0 / 1 (:mod:`kexue.tasks.seq2seq_data`); the
Transformer runs with ``mask_kind="unilm"`` (source bidirectional, target left-to-right over the source and its
own prefix) and its MLM head, tied to the word embeddings, gives next-token logits. The loss is the next-token
cross-entropy on target positions only (``--loss ce``) or the top-k Sparse Softmax of SPACES
(``--loss sparse-softmax --sparse-k 10``, :mod:`kexue.losses.sparse_softmax`). A checkpoint without MLM head
weights gets a new head (dense + LayerNorm + bias, decoder tied to the word embeddings), and the log says so.
Evaluation during training is teacher-forced on the dev split: target-token loss and accuracy (``best/`` is the
best ``token_accuracy``); decoding is :mod:`kexue.generation`'s job.

Sources: "从语言模型到Seq2Seq:Transformer如戏,全靠Mask", https://kexue.fm/archives/6933 (UniLM); spec §4 and
arch §12 / §14.5.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kexue.data.readers.seq2seq import load_seq2seq
from kexue.data.tokenization import Tokenizer
from kexue.errors import ConfigError
from kexue.losses.sparse_softmax import sparse_softmax_cross_entropy
from kexue.models import Transformer
from kexue.models.auto import load_encoder
from kexue.tasks.common import SCRATCH, ScratchModel, build_backbone, jsonable
from kexue.tasks.seq2seq_data import Seq2SeqCollator, content_ids, encode_pair, target_labels
from kexue.train import Trainer, TrainerConfig, prepare_run_dir
from kexue.train.distributed import is_main_process
from kexue.train.seed import seed_everything

LOSSES = ("ce", "sparse-softmax")
SETTINGS_FILE = "seq2seq.json"
"""Written next to the weights: the input limits the model was trained with (read back by decoding)."""


@dataclass
class Seq2SeqConfig:
    """Options of ``kexue train seq2seq`` (the trainer's options live in :class:`kexue.train.TrainerConfig`).

    Args:
        model: a kexue checkpoint folder (BERT / RoFormer / RoFormerV2), a run folder, an alias, or ``scratch``
            (a BERT over a character vocabulary built from the training texts).
        data: ``lcsts_clge``, ``csl_title`` or a file of your own (``source \\t target`` or JSON lines).
        dev: a dev file for a ``data`` file of your own (a registered dataset uses its dev split).
        max_source_length / max_target_length: tokens kept of each side, special tokens excluded.
        loss: ``ce`` or ``sparse-softmax``; sparse_k and include_target: its top-k set (``--sparse-k``,
            ``--include-target``: normalise over top-k plus the target).
        train_limit / eval_limit: use only the first N training / dev pairs.
    """

    model: str = SCRATCH
    data: str = "lcsts_clge"
    dev: str | None = None
    max_source_length: int = 128
    max_target_length: int = 32
    loss: str = "ce"
    sparse_k: int = 10
    include_target: bool = False
    train_limit: int | None = None
    eval_limit: int | None = None
    eval_batch_size: int = 64
    scratch: ScratchModel = field(default_factory=ScratchModel)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss: expected one of {', '.join(LOSSES)}, got {self.loss!r}")
        for flag, value in (("--max-source-length", self.max_source_length),
                            ("--max-target-length", self.max_target_length), ("--sparse-k", self.sparse_k)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{flag}: expected an integer >= 1, got {value!r}")
        for flag, value in (("--train-limit", self.train_limit), ("--eval-limit", self.eval_limit)):
            if value is not None and value < 1:
                raise ConfigError(f"{flag}: expected an integer >= 1, got {value}")

    @property
    def max_length(self) -> int:
        """Longest encoded pair: ``[CLS] source [SEP] target [SEP]``."""
        return self.max_source_length + self.max_target_length + 3


def ensure_mlm_head(model: Transformer, log: Callable[[str], None] = print) -> Transformer:
    """``model`` itself if it has an MLM head, else a copy with a new one (dense + LayerNorm + zero bias, decoder
    tied to the word embeddings by construction), saying so in ``log``."""
    if model.mlm_head is not None:
        return model
    with_head = Transformer(dataclasses.replace(model.config, mlm=True))
    missing, unexpected = with_head.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not k.startswith("mlm_head.") for k in missing):
        raise ConfigError(f"adding an MLM head changed the backbone's keys: missing {missing}, unexpected {unexpected}")
    log("the checkpoint has no MLM head: a new one is initialised, its decoder tied to the word embeddings")
    return with_head


def load_seq2seq_backbone(model: str, train_texts: Sequence[str], scratch: ScratchModel, max_length: int,
                          log: Callable[[str], None] = print) -> tuple[Transformer, Tokenizer]:
    """The Transformer (with an MLM head, see :func:`ensure_mlm_head`) and tokenizer that ``--model`` names.

    Raises:
        ConfigError: a checkpoint that is not one of kexue's families (the UniLM mask is kexue's own attention);
            as :func:`kexue.tasks.common.build_backbone`. CheckpointError: weights that do not load exactly.
    """
    if model == SCRATCH:
        backbone, tokenizer = build_backbone(model, train_texts, scratch, max_length)
        return ensure_mlm_head(backbone, lambda _message: None), tokenizer  # all of it is new: nothing to say
    backbone, kind = load_encoder(model)
    if kind != "kexue":
        raise ConfigError(f"--model {model}: UniLM seq2seq needs a BERT / RoFormer / RoFormerV2 checkpoint that "
                          f"kexue's Transformer loads (the UniLM mask is its own attention), not a "
                          f"{type(backbone.model).__name__}")
    return ensure_mlm_head(backbone, log), Tokenizer.from_pretrained(model)


class Seq2SeqLM(nn.Module):
    """A Transformer with an MLM head run under the UniLM mask: ``[B, L]`` ids -> next-token logits ``[B, L, V]``.

    Saved as the Transformer (Hugging Face layout, MLM head included), the tokenizer, and ``seq2seq.json`` with the
    input limits.
    """

    def __init__(self, backbone: Transformer, tokenizer: Tokenizer, settings: dict[str, Any] | None = None) -> None:
        super().__init__()
        if backbone.mlm_head is None:
            raise ConfigError("Seq2SeqLM needs a Transformer with an MLM head (see ensure_mlm_head)")
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.settings = dict(settings or {})

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, L, V]``; position ``t`` scores token ``t + 1``."""
        return self.backbone(input_ids, attention_mask, token_type_ids, mask_kind="unilm").mlm_logits

    def save_pretrained(self, path: str | Path) -> None:
        """Write the backbone, the tokenizer and ``seq2seq.json`` into ``path``."""
        path = Path(path)
        self.backbone.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        (path / SETTINGS_FILE).write_text(json.dumps(self.settings, indent=2), encoding="utf-8")

    @classmethod
    def from_pretrained(cls, path: str | Path, log: Callable[[str], None] = print) -> "Seq2SeqLM":
        """Load a saved model (a folder, or a run folder's ``best/``) with its tokenizer and settings."""
        from kexue.hub import resolve_model_path

        folder = resolve_model_path(path)
        backbone, tokenizer = load_seq2seq_backbone(str(folder), (), ScratchModel(), 0, log)
        settings_file = folder / SETTINGS_FILE
        settings = json.loads(settings_file.read_text(encoding="utf-8")) if settings_file.is_file() else {}
        return cls(backbone.eval(), tokenizer, settings)


def seq2seq_loss(logits: torch.Tensor, batch: dict[str, torch.Tensor], loss: str = "ce", sparse_k: int = 10,
                 include_target: bool = False) -> torch.Tensor:
    """Mean next-token loss over the target tokens of a batch (source positions and padding count for nothing).

    Args:
        logits: ``[B, L, V]`` from :class:`Seq2SeqLM`. batch: ``input_ids``, ``token_type_ids``, ``attention_mask``.
        loss: ``ce`` or ``sparse-softmax`` (top-``sparse_k``, ``include_target`` as
            :func:`~kexue.losses.sparse_softmax.sparse_softmax_cross_entropy`).
    """
    labels = target_labels(batch["input_ids"], batch["token_type_ids"], batch.get("attention_mask"))
    flat_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    flat_labels = labels.reshape(-1)
    if loss == "ce":
        return F.cross_entropy(flat_logits, flat_labels, ignore_index=-100)
    return sparse_softmax_cross_entropy(flat_logits, flat_labels, sparse_k, include_target=include_target)


def make_evaluator(features: Sequence[dict[str, list[int]]], collate: Seq2SeqCollator, batch_size: int
                   ) -> Callable[[nn.Module], dict[str, float]]:
    """``evaluate(model)``: teacher-forced full-softmax ``loss`` (mean per target token), ``token_accuracy``
    (argmax equals the next target token) and ``exact_match`` (every target token right) on ``features``."""
    def evaluate(model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        total = correct = nll = exact = 0.0
        for start in range(0, len(features), batch_size):
            batch = {k: v.to(device) for k, v in collate(features[start:start + batch_size]).items()}
            logits = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])[:, :-1].float()
            labels = target_labels(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
            keep = labels != -100
            nll += float(F.cross_entropy(logits[keep], labels[keep], reduction="sum"))
            hit = (logits.argmax(-1) == labels) & keep
            correct += float(hit.sum())
            total += float(keep.sum())
            exact += float((hit.sum(-1) == keep.sum(-1)).sum())
        return {"loss": nll / max(total, 1.0), "token_accuracy": correct / max(total, 1.0),
                "exact_match": exact / max(len(features), 1)}
    return evaluate


def fit_seq2seq(model: Seq2SeqLM, train_features: list[dict[str, list[int]]],
                dev_features: list[dict[str, list[int]]], cfg: Seq2SeqConfig, trainer_cfg: TrainerConfig,
                run_config: dict[str, Any], log: Callable[[str], None] = print) -> tuple[Trainer, dict | None]:
    """Train ``model`` on encoded pairs with the shared Trainer (``best/`` by dev ``token_accuracy``); returns the
    trainer and the best checkpoint's dev metrics (``None`` off rank 0)."""
    collate = Seq2SeqCollator(model.tokenizer.pad_token_id)

    def compute_loss(m: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = m(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        return seq2seq_loss(logits, batch, cfg.loss, cfg.sparse_k, cfg.include_target)

    trainer_cfg.metric_for_best = trainer_cfg.metric_for_best or "token_accuracy"
    trainer_cfg.find_unused_parameters = True  # the pooler gets no gradient
    trainer = Trainer(model, trainer_cfg, train_features, compute_loss=compute_loss, collate_fn=collate,
                      evaluate=make_evaluator(dev_features, collate, cfg.eval_batch_size), run_config=run_config)
    trainer.fit()
    if not is_main_process():
        return trainer, None
    best_dir = Path(trainer_cfg.output_dir) / "best"
    best = Seq2SeqLM.from_pretrained(best_dir, log=lambda _m: None) if (best_dir / "config.json").is_file() else model
    with torch.no_grad():
        metrics = make_evaluator(dev_features, collate, cfg.eval_batch_size)(best.eval())
    return trainer, metrics


def load_pairs_for(cfg: Seq2SeqConfig) -> tuple[list, list]:
    """Train and dev source/target pairs of ``cfg.data`` (``--dev`` for a file of your own).

    Raises:
        ConfigError: a file of your own without ``--dev``. DataFormatError: a malformed line.
    """
    train = load_seq2seq(cfg.data, "train")
    if cfg.dev is not None:
        dev = load_seq2seq(cfg.dev, "dev")
    elif Path(cfg.data).expanduser().is_file():
        raise ConfigError(f"--data {cfg.data}: one file is the training split; give the dev pairs with --dev")
    else:
        dev = load_seq2seq(cfg.data, "dev")
    if cfg.train_limit is not None:
        train = train[:cfg.train_limit]
    if cfg.eval_limit is not None:
        dev = dev[:cfg.eval_limit]
    return train, dev


def train_seq2seq(cfg: Seq2SeqConfig, trainer_cfg: TrainerConfig, log: Callable[[str], None] = print
                  ) -> dict[str, Any]:
    """Train a UniLM seq2seq model on ``cfg.data``; keep the best dev token accuracy.

    Returns:
        (rank 0; ``{}`` elsewhere) ``{"data", "model", "loss", "train_pairs", "dev_pairs", "dev", "best_dir",
        "optimizer_steps"}``, also written to ``<output_dir>/results.json``.
    Raises:
        ConfigError: bad options or a model kexue cannot run under the UniLM mask. DataFormatError: a bad line.
    """
    train, dev = load_pairs_for(cfg)  # data refusals before the run folder exists
    prepare_run_dir(trainer_cfg, {"task": "seq2seq", "seq2seq": cfg}, log=log)
    texts = [t for e in train for t in (e.source, e.target)]
    seed_everything(trainer_cfg.seed)  # --seed decides a scratch model's and a new MLM head's initialisation
    backbone, tokenizer = load_seq2seq_backbone(cfg.model, texts, cfg.scratch, cfg.max_length, log)
    settings = {"max_source_length": cfg.max_source_length, "max_target_length": cfg.max_target_length}
    model = Seq2SeqLM(backbone, tokenizer, settings)

    def encode(pairs):
        src = content_ids(tokenizer, [e.source for e in pairs])
        tgt = content_ids(tokenizer, [e.target for e in pairs])
        return [encode_pair(s, t, tokenizer.cls_token_id, tokenizer.sep_token_id, cfg.max_source_length,
                            cfg.max_target_length) for s, t in zip(src, tgt)]

    log(f"{cfg.data}: {len(train)} training pairs, {len(dev)} dev pairs; loss {cfg.loss}"
        + (f" (k={cfg.sparse_k}{', target included' if cfg.include_target else ''})"
           if cfg.loss == "sparse-softmax" else ""))
    trainer, metrics = fit_seq2seq(model, encode(train), encode(dev), cfg, trainer_cfg,
                                   {"task": "seq2seq", "seq2seq": jsonable(asdict(cfg))}, log)
    if metrics is None:
        return {}
    log("dev (best checkpoint, teacher-forced): " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    results = {"data": cfg.data, "model": cfg.model, "loss": cfg.loss, "train_pairs": len(train),
               "dev_pairs": len(dev), "dev": metrics, "best_dir": str(Path(trainer_cfg.output_dir) / "best"),
               "optimizer_steps": trainer.state.global_step}
    (Path(trainer_cfg.output_dir) / "results.json").write_text(
        json.dumps(jsonable(results), indent=2, allow_nan=False), encoding="utf-8")
    return results
