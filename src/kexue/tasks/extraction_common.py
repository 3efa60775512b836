"""What the extraction recipes (NER, relations, events) share: the backbone, tokenisation with character offsets,
the model container and its run-folder format, batching, prediction and the training driver.

A task (:class:`kexue.tasks.ner.NerTask`, :class:`kexue.tasks.relation.RelationTask`,
:class:`kexue.tasks.event.EventTask`) supplies its head and its label logic through the :class:`ExtractionTask`
protocol; everything else lives here once.

A saved extraction model (``best/`` and ``last/`` of a run) is a folder holding the backbone in the Hugging Face
layout (``config.json`` + ``model.safetensors``), the tokenizer (``tokenizer.json``, ``vocab.txt``), the head weights
``extraction_head.safetensors`` and ``kexue_extraction.json`` (task, label names / schema, head options, max length).

Sources: https://kexue.fm/archives/8373 (GlobalPointer), https://kexue.fm/archives/8888 and
https://kexue.fm/archives/8926 (GPLinker); offsets replace bert4keras' ``rematch`` (spec §14.6).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from kexue.data.bucketing import LengthBucketBatchSampler
from kexue.data.collate import pad_batch
from kexue.data.tokenization import Tokenizer
from kexue.errors import CheckpointError, ConfigError
from kexue.models import Transformer
from kexue.models.auto import load_encoder
from kexue.tasks.extraction_data import ExtractionSplits
from kexue.tasks.common import ScratchModel, build_backbone, jsonable
from kexue.train import Trainer, TrainerConfig
from kexue.optim.param_groups import head_lr_multipliers
from kexue.train.optimization import no_decay_parameter_names
from kexue.train.distributed import is_main_process
from kexue.train.seed import seed_everything
from kexue.train.technique_hooks import build_optimizer_factory

MODEL_CONFIG = "kexue_extraction.json"
HEAD_WEIGHTS = "extraction_head.safetensors"
_ID_KEYS = ("input_ids", "token_type_ids", "attention_mask")


@dataclass
class Encoded:
    """One tokenised text: ids, ``offsets`` ``[T, 2]`` int64 (``(0, 0)`` for special tokens, ``end`` exclusive),
    whether the text was cut at ``max_length`` tokens, and the task's label object (``None`` for prediction)."""

    text: str
    input_ids: list[int]
    token_type_ids: list[int]
    offsets: np.ndarray
    truncated: bool
    labels: Any = None

    @property
    def special(self) -> list[int]:
        """1 at tokens that cover no character (``[CLS]``, ``[SEP]``), else 0."""
        return (self.offsets[:, 1] <= self.offsets[:, 0]).astype(np.int64).tolist()


def tokenize(tokenizer: Tokenizer, texts: Sequence[str], max_length: int) -> list[Encoded]:
    """Tokenise ``texts`` with character offsets into the original strings (exact for WordPiece and for Chinese
    character vocabularies: the normaliser's alignments map every token back to its source characters).

    ``truncated`` is True when characters other than whitespace lie past the last kept token.
    """
    enc = tokenizer(list(texts), max_length=max_length, truncation=True, return_offsets=True)
    out = []
    for n, text in enumerate(texts):
        off = np.asarray(enc["offsets"][n], dtype=np.int64).reshape(-1, 2)
        last = int(off[:, 1].max()) if len(off) else 0
        out.append(Encoded(text, enc["input_ids"][n], enc["token_type_ids"][n], off, bool(text[last:].strip())))
    return out


class ExtractionTask(Protocol):
    """What a task supplies to the shared machinery (see :mod:`kexue.tasks.ner` for an example)."""

    name: str

    def build_head(self, hidden_size: int) -> nn.Module:
        """The head: ``head(hidden_states [B, L, H], attention_mask [B, L]) -> outputs``."""

    def meta(self) -> dict[str, Any]:
        """JSON-serialisable options and label names, enough for ``from_meta`` to rebuild the task."""

    def encode(self, example: Any, item: Encoded) -> int:
        """Set ``item.labels`` from ``example``'s gold annotation; return how many gold items cannot be expressed
        on this tokenisation (boundary inside a token, truncated away, nested for BIO heads)."""

    def collate(self, labels: list[Any], length: int, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Label tensors for a padded batch of sequence length ``length``."""

    def loss(self, head: nn.Module, outputs: Any, batch: dict[str, Tensor]) -> Tensor:
        """Scalar training loss (``head`` is the module :meth:`build_head` made, e.g. for a CRF's transitions)."""

    def decode(self, head: nn.Module, outputs: Any, batch: dict[str, Tensor], items: Sequence[Encoded]) -> list[Any]:
        """Predictions of a batch, in character offsets of each ``item.text``."""

    def gold(self, example: Any) -> Any:
        """Gold annotation of ``example`` in the same form as :meth:`decode`'s predictions."""

    def score(self, predictions: Sequence[Any], gold: Sequence[Any]) -> dict[str, float]:
        """Metrics (x100) with the selection metric under ``"f1"``."""

    def to_json(self, prediction: Any, item: Encoded) -> dict[str, Any]:
        """One JSON line of ``kexue predict``."""


class ExtractionModel(nn.Module):
    """Backbone + task head. ``forward(input_ids, attention_mask, token_type_ids)`` -> the head's outputs.

    Args:
        encoder: a kexue :class:`Transformer` or :class:`kexue.models.auto.HFEncoder` (``last_hidden_state``).
        head: the task head. tokenizer: the backbone's tokenizer. task: the :class:`ExtractionTask`.
        max_length: tokens per text (``[CLS]``/``[SEP]`` included), kept for prediction.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, tokenizer: Tokenizer, task: ExtractionTask,
                 max_length: int) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head
        self.tokenizer, self.task, self.max_length = tokenizer, task, max_length

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None,
                loss_batch: dict[str, Tensor] | None = None) -> Any:
        """Head outputs for a padded batch ``[B, L]``; with ``loss_batch`` (the collated batch with the task's
        label tensors) the task's scalar training loss instead, so that a ``DistributedDataParallel`` wrapper's
        forward covers every parameter the loss uses (a CRF's transitions included)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        outputs = self.head(hidden, attention_mask)
        if loss_batch is None:
            return outputs
        return self.task.loss(self.head, outputs, loss_batch)

    def save_pretrained(self, path: str | Path) -> None:
        """Write backbone (HF layout), tokenizer, head weights (safetensors) and ``kexue_extraction.json``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        saver = self.encoder if isinstance(self.encoder, Transformer) else self.encoder.model
        saver.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.head.state_dict().items()},
                  str(path / HEAD_WEIGHTS))
        meta = {"task": self.task.name, "max_length": self.max_length, **self.task.meta()}
        (path / MODEL_CONFIG).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def resolve_model_folder(path: str | Path) -> Path:
    """The saved model inside a run folder (``RUN/best``, else ``RUN/last``) or ``path`` itself.

    Raises:
        CheckpointError: no ``kexue_extraction.json`` in any of them.
    """
    path = Path(path)
    for candidate in (path / "best", path / "last", path):
        if (candidate / MODEL_CONFIG).is_file():
            return candidate
    raise CheckpointError(f"{path} is neither an extraction run folder nor a saved extraction model "
                          f"(no {MODEL_CONFIG} in it, in best/ or in last/)", missing=[MODEL_CONFIG])


def load_extraction_model(path: str | Path, task_name: str,
                          task_from_meta: Callable[[dict[str, Any]], ExtractionTask]) -> ExtractionModel:
    """Load a model written by :meth:`ExtractionModel.save_pretrained` (or the best model of a run folder).

    Raises:
        CheckpointError: missing files, a model of another task, or head weights that do not fit.
    """
    folder = resolve_model_folder(path)
    meta = json.loads((folder / MODEL_CONFIG).read_text(encoding="utf-8"))
    if meta.get("task") != task_name:
        raise CheckpointError(f"{folder} holds a {meta.get('task')!r} model, not a {task_name!r} one")
    if not (folder / HEAD_WEIGHTS).is_file():
        raise CheckpointError(f"{folder}: no {HEAD_WEIGHTS}", missing=[HEAD_WEIGHTS])
    encoder, _ = load_encoder(folder)
    task = task_from_meta(meta)
    head = task.build_head(int(encoder.config.hidden_size))
    weights, own = load_file(str(folder / HEAD_WEIGHTS)), head.state_dict()
    missing, unexpected = set(own) - set(weights), set(weights) - set(own)
    mismatched = {k: (tuple(own[k].shape), tuple(v.shape)) for k, v in weights.items()
                  if k in own and own[k].shape != v.shape}
    if missing or unexpected or mismatched:
        raise CheckpointError(f"{folder / HEAD_WEIGHTS} does not fit the {task_name} head", missing=missing,
                              unexpected=unexpected, mismatched=mismatched)
    head.load_state_dict(weights)
    return ExtractionModel(encoder, head, Tokenizer.from_pretrained(folder), task, int(meta["max_length"])).eval()


def collate(items: Sequence[Encoded], task: ExtractionTask, pad_token_id: int, with_labels: bool
            ) -> dict[str, Tensor]:
    """A padded batch: ``input_ids``/``token_type_ids``/``attention_mask`` ``[B, L]``, ``special_tokens_mask``
    ``[B, L]`` bool (True at ``[CLS]``, ``[SEP]`` and padding) and, with labels, the task's label tensors."""
    feats = [{"input_ids": it.input_ids, "token_type_ids": it.token_type_ids, "special_tokens_mask": it.special}
             for it in items]
    batch = pad_batch(feats, pad_token_id, pad_values={"special_tokens_mask": 1})
    batch["special_tokens_mask"] = batch["special_tokens_mask"].bool()
    if with_labels:
        batch.update(task.collate([it.labels for it in items], batch["input_ids"].shape[1], batch))
    return batch


def keep_top_cells(logits: Tensor, k: int, per_head: bool = True) -> Tensor:
    """Span scores ``[B, heads, L, L]`` with every cell outside the ``k`` highest of each (example, head) — or of
    each example over all heads when ``per_head=False`` — set to ``torch.finfo(dtype).min``.

    Decoding pairs candidate spans (GPLinker's subject × object test, the clique search over event arguments), so
    its cost grows with the number of cells above the threshold; a trained model proposes a handful per text, an
    untrained one about half of all cells. Capping the candidates keeps evaluation early in training bounded and
    does not change the result while fewer than ``k`` cells pass the threshold.
    """
    flat = logits.flatten(2) if per_head else logits.flatten(1)
    if flat.shape[-1] <= k:
        return logits
    kth = flat.topk(k, dim=-1).values[..., -1:]
    return flat.masked_fill(flat < kth, torch.finfo(logits.dtype).min).view_as(logits)


@torch.no_grad()
def predict(model: ExtractionModel, items: Sequence[Encoded], batch_size: int = 64) -> list[Any]:
    """The task's decoded predictions for ``items``, in order (batches sorted by length for speed)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    out: list[Any] = [None] * len(items)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        chunk = [items[i] for i in idx]
        batch = collate(chunk, model.task, model.tokenizer.pad_token_id, with_labels=False)
        outputs = model(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                        batch["token_type_ids"].to(device))
        outputs = tuple(o.float().cpu() for o in outputs) if isinstance(outputs, tuple) else outputs.float().cpu()
        for i, pred in zip(idx, model.task.decode(model.head, outputs, batch, chunk), strict=True):
            out[i] = pred
    model.train(was_training)
    return out


def evaluate_examples(model: ExtractionModel, examples: Sequence[Any], batch_size: int = 64) -> dict[str, float]:
    """Predict ``examples`` and score against their full gold annotation (gold items the tokenisation cannot
    express or that were truncated away count as misses)."""
    items = tokenize(model.tokenizer, [e.text for e in examples], model.max_length)
    preds = predict(model, items, batch_size)
    return model.task.score(preds, [model.task.gold(e) for e in examples])


@dataclass
class ExtractionConfig:
    """Options shared by the extraction recipes (the trainer's live in :class:`kexue.train.TrainerConfig`).

    Args:
        model: ``minilm``, a checkpoint folder, or ``scratch`` (character vocabulary from the training texts,
            :class:`kexue.tasks.common.ScratchModel` sizes).
        data: a registered dataset or a folder (:mod:`kexue.tasks.extraction_data`).
        max_length: tokens per text. head_size: ``d`` of the GlobalPointer heads.
        train_limit / eval_limit: use only the first N examples of train / of dev and test.
        eval_batch_size: texts per forward pass when evaluating.
        head_lr: the task head's peak learning rate (``--head-lr``, absolute; the backbone stays at ``--lr``);
            ``None`` = the same as ``--lr``. Default 5e-3: the best dev F1 of GlobalPointer, Efficient
            GlobalPointer and the λ=1000 CRF on CoNLL-2003 with all-MiniLM-L6-v2 at --lr 5e-5 (grid 5e-5, 5e-4,
            5e-3, 2e-2; at the encoder's own rate both pointer heads stayed at 0 F1 after an epoch of 1,000
            sentences); docs/RESULTS.md, extraction-en. A CRF's transition multiplier (``crf_lr_multiplier``) is
            separate and multiplies on top of it (https://kexue.fm/archives/7196).
    """

    model: str = "minilm"
    data: str = ""
    max_length: int = 128
    head_size: int = 64
    train_limit: int | None = None
    eval_limit: int | None = None
    eval_batch_size: int = 64
    head_lr: float | None = 5e-3
    scratch: ScratchModel = field(default_factory=ScratchModel)

    def __post_init__(self) -> None:
        if self.max_length < 4:
            raise ConfigError(f"--max-length: expected an integer >= 4, got {self.max_length}")
        for name in ("train_limit", "eval_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')}: expected an integer >= 1, got {value}")
        if self.head_lr is not None and not self.head_lr > 0:
            raise ConfigError(f"--head-lr: expected a learning rate > 0, got {self.head_lr}")


def encode_split(task: ExtractionTask, tokenizer: Tokenizer, examples: Sequence[Any], max_length: int
                 ) -> tuple[list[Encoded], int]:
    """Tokenise ``examples`` and attach their labels; returns the items and the number of gold items dropped."""
    items = tokenize(tokenizer, [e.text for e in examples], max_length)
    dropped = sum(task.encode(e, it) for e, it in zip(examples, items, strict=True))
    return items, dropped


def head_lr_optimizer_factory(model: ExtractionModel, head_lr: float, lr: float) -> Callable:
    """AdamW (the Trainer's defaults, weight-decay exemptions kept) with ``model.head`` at ``head_lr`` and the
    backbone at ``lr`` (raises ConfigError for a rate <= 0, naming ``--head-lr`` / ``--lr``)."""
    return build_optimizer_factory("adamw", lr_multipliers=head_lr_multipliers(lr, head_lr, ("head",)),
                                   no_decay=no_decay_parameter_names(model))


def train_extraction(task: ExtractionTask, cfg: ExtractionConfig, trainer_cfg: TrainerConfig, splits: ExtractionSplits,
                     log: Callable[[str], None] = print, optimizer_factory: Callable | None = None,
                     extra_results: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``task`` on ``splits.train``, keep the best dev ``f1`` in ``best/``, evaluate it on dev and test.

    Returns:
        ``{"task", "data", "split", "dev": metrics, "test": metrics | None, "dropped_train_items",
        "train_seconds" (training without evaluation), "seconds_per_epoch", "optimizer_steps", "best_dir", ...}``,
        also written to ``<output_dir>/results.json``; ``{}`` on the non-zero ranks of a torchrun launch.

    Raises:
        ConfigError: no dev split, bad options. DataFormatError: malformed data.
    """
    if splits.dev is None:
        raise ConfigError(f"--data {cfg.data}: a labelled dev split is needed to select the best checkpoint")
    seed_everything(trainer_cfg.seed)  # --seed decides the head's (and a scratch encoder's) initialisation
    encoder, tokenizer = build_backbone(cfg.model, [e.text for e in splits.train], cfg.scratch, cfg.max_length)
    model = ExtractionModel(encoder, task.build_head(int(encoder.config.hidden_size)), tokenizer, task,
                            cfg.max_length)
    items, dropped = encode_split(task, tokenizer, splits.train, cfg.max_length)
    log(f"{splits.description}; {dropped} gold training items not expressible on the tokenisation (dropped)")
    sampler = LengthBucketBatchSampler([len(it.input_ids) for it in items], trainer_cfg.batch_size,
                                       seed=trainer_cfg.seed, drop_last=trainer_cfg.drop_last)

    def batches(epoch: int, _generator: torch.Generator) -> list[list[int]]:
        sampler.set_epoch(epoch)
        return [b.tolist() for b in sampler.global_batches()]

    def compute_loss(m: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        # called through the (possibly DDP-wrapped) module, never unwrapped: DDP must see the forward
        return m(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], loss_batch=batch)

    eval_seconds = [0.0]

    def evaluate(m: nn.Module) -> dict[str, float]:
        start = time.perf_counter()
        metrics = evaluate_examples(m, splits.dev, cfg.eval_batch_size)
        eval_seconds[0] += time.perf_counter() - start
        return metrics

    trainer_cfg.metric_for_best = trainer_cfg.metric_for_best or "f1"
    if cfg.head_lr is not None:
        if optimizer_factory is not None:
            raise ConfigError("--head-lr: cannot be combined with a custom optimizer factory")
        optimizer_factory = head_lr_optimizer_factory(model, cfg.head_lr, trainer_cfg.learning_rate)
    trainer_cfg.find_unused_parameters = True  # under torchrun: token-level heads never use the backbone's pooler
    trainer = Trainer(model, trainer_cfg, items, compute_loss=compute_loss,
                      collate_fn=lambda chunk: collate(chunk, task, tokenizer.pad_token_id, with_labels=True),
                      evaluate=evaluate, batch_sampler=batches, optimizer_factory=optimizer_factory,
                      save_model=lambda m, p: m.save_pretrained(p),
                      run_config={"task": task.name, task.name: jsonable({**asdict(cfg), **task.meta()})})
    start = time.perf_counter()
    trainer.fit()
    train_seconds = time.perf_counter() - start - eval_seconds[0]
    if not is_main_process():  # under torchrun only rank 0 evaluates and writes results.json
        return {}
    epochs = trainer.state.epoch + trainer.state.batches_done / max(len(sampler), 1)
    best_dir = Path(trainer_cfg.output_dir) / "best"
    best = load_extraction_model(best_dir, task.name, type(task).from_meta)
    results: dict[str, Any] = {"task": task.name, "data": cfg.data, "model": cfg.model, "split": splits.description,
                               **task.meta(), "dropped_train_items": dropped}
    for split in ("dev", "test"):
        examples = getattr(splits, split)
        results[split] = None if examples is None else evaluate_examples(best, examples, cfg.eval_batch_size)
        if results[split] is not None:
            log(f"{splits.name} {split} (best checkpoint): " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                                         results[split].items()))
    results.update(train_seconds=train_seconds, seconds_per_epoch=train_seconds / max(epochs, 1e-9),
                   epochs=epochs, optimizer_steps=trainer.state.global_step, best_dir=str(best_dir),
                   **(extra_results or {}))
    (Path(trainer_cfg.output_dir) / "results.json").write_text(json.dumps(jsonable(results), indent=2,
                                                                          ensure_ascii=False), encoding="utf-8")
    return results
