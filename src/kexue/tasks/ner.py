"""The NER recipe: an encoder with a GlobalPointer, Efficient GlobalPointer, CRF or softmax (BIO) head.

Heads (``--head``):

* ``global_pointer`` — one span-score matrix per type, dense multi-label CE over the ``L²`` cells of each
  (example, type) row, mean (https://kexue.fm/archives/8373); nested entities are learnt and predicted.
* ``efficient_global_pointer`` — shared span score + per-type start/end bias (https://kexue.fm/archives/8877).
* ``crf`` — ``Linear(H, 2m+1)`` BIO emissions and a linear-chain CRF; ``--crf-lr-multiplier λ`` re-parameterises the
  CRF's transitions as ``θ = λ·φ`` so that Adam moves them ``≈λ`` times faster (https://kexue.fm/archives/7196;
  bert4keras' example uses 1000 with encoder lr 1e-5).
* ``softmax`` — the same emissions with per-token cross-entropy and argmax decoding (the BIO baseline).

BIO tags live on tokens: the first token of an entity is ``B-X`` and every other token of it ``I-X``
(``O = 0``, ``B-type_i = 2i+1``, ``I-type_i = 2i+2``); ``[CLS]``/``[SEP]`` are outside the CRF's mask and the loss.
Nested gold entities cannot be BIO-tagged: for the BIO heads the longest of overlapping entities is kept and the rest
are counted as dropped. Evaluation is entity-level micro P/R/F1 on ``(type, char_start, char_end)`` against the full
gold set; on CoNLL data (entities on whole words) this equals seqeval's entity F1 on word tags.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from kexue.data.readers.ner import NerExample
from kexue.errors import ConfigError
from kexue.extraction.spans import (bio_label_names, bio_to_spans, char_spans_to_token_spans, char_to_token_maps,
                                    token_spans_to_char_spans)
from kexue.losses.multilabel import multilabel_categorical_crossentropy
from kexue.metrics.extraction import entity_prf
from kexue.nn.crf import CRF
from kexue.nn.global_pointer import EfficientGlobalPointer, GlobalPointer, decode_spans, span_labels_dense
from kexue.tasks.extraction_common import (Encoded, ExtractionConfig, ExtractionModel, load_extraction_model,
                                           train_extraction)
from kexue.tasks.extraction_data import limit_splits, load_extraction_splits
from kexue.train import TrainerConfig, prepare_run_dir

HEADS = ("global_pointer", "efficient_global_pointer", "crf", "softmax")
Span = tuple[str, int, int]
"""``(type, char_start, char_end_exclusive)``."""


class BioTagger(nn.Module):
    """``Linear(H, num_tags)`` emissions ``[B, L, num_tags]``, plus a :class:`kexue.nn.CRF` when ``crf``."""

    def __init__(self, hidden_size: int, num_tags: int, crf: bool, lr_multiplier: float = 1.0) -> None:
        super().__init__()
        self.emissions = nn.Linear(hidden_size, num_tags)
        self.crf = CRF(num_tags, lr_multiplier=lr_multiplier) if crf else None

    def forward(self, hidden_states: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Emission scores ``[B, L, num_tags]`` for ``hidden_states`` ``[B, L, H]``."""
        return self.emissions(hidden_states)


def _longest_non_overlapping(spans: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    kept: list[tuple[int, int, int]] = []
    used: set[int] = set()
    for t, s, e in sorted(spans, key=lambda x: (x[1] - x[2], x[1])):
        if not used.intersection(range(s, e + 1)):
            kept.append((t, s, e))
            used.update(range(s, e + 1))
    return kept


def _content_mask(batch: dict[str, Tensor]) -> Tensor:
    """``[B, L]`` True at real, non-special tokens; a row without any gets position 0 (tagged O) so the CRF has one
    valid step."""
    mask = batch["attention_mask"].bool() & ~batch["special_tokens_mask"]
    empty = ~mask.any(dim=1)
    mask[empty, 0] = True
    return mask


@dataclass
class NerTask:
    """Entity types and head options of the NER recipe (implements :class:`ExtractionTask`).

    Args:
        types: entity type names (GlobalPointer head ``i`` / BIO ``B-types[i]``).
        head: one of :data:`HEADS`. head_size: GlobalPointer ``d``. crf_lr_multiplier: ``λ`` of the CRF.

    Raises:
        ConfigError: unknown head, no types, ``crf_lr_multiplier <= 0``.
    """

    types: tuple[str, ...]
    head: str = "global_pointer"
    head_size: int = 64
    crf_lr_multiplier: float = 1.0
    name: str = "ner"

    def __post_init__(self) -> None:
        self.types = tuple(self.types)
        if self.head not in HEADS:
            raise ConfigError(f"--head: expected one of {', '.join(HEADS)}, got {self.head!r}")
        if not self.types:
            raise ConfigError("NER needs at least one entity type (the training data has no entities)")
        if self.crf_lr_multiplier <= 0:
            raise ConfigError(f"--crf-lr-multiplier: expected a value > 0, got {self.crf_lr_multiplier}")

    @property
    def span_head(self) -> bool:
        """Whether the head scores spans (GlobalPointer family) rather than BIO tags."""
        return self.head in ("global_pointer", "efficient_global_pointer")

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> NerTask:
        """Rebuild from :meth:`meta` (a saved model's ``kexue_extraction.json``)."""
        return cls(tuple(meta["types"]), meta["head"], int(meta["head_size"]), float(meta["crf_lr_multiplier"]))

    def meta(self) -> dict[str, Any]:
        """Types and head options."""
        return {"types": list(self.types), "head": self.head, "head_size": self.head_size,
                "crf_lr_multiplier": self.crf_lr_multiplier}

    def build_head(self, hidden_size: int) -> nn.Module:
        """The head module for an encoder of width ``hidden_size``."""
        if self.span_head:
            pointer = GlobalPointer if self.head == "global_pointer" else EfficientGlobalPointer
            return pointer(hidden_size, len(self.types), self.head_size)
        return BioTagger(hidden_size, 2 * len(self.types) + 1, self.head == "crf", self.crf_lr_multiplier)

    def encode(self, example: NerExample, item: Encoded) -> int:
        """Token spans ``(type_index, start, end)`` (inclusive) of the gold entities; returns the number dropped."""
        index = {t: i for i, t in enumerate(self.types)}
        known = [e for e in example.entities if e.type in index]
        start_map, end_map = char_to_token_maps(item.offsets, len(example.text))
        tok = char_spans_to_token_spans([(e.start, e.end) for e in known], start_map, end_map)
        spans = list(dict.fromkeys((index[e.type], int(s), int(t)) for e, (s, t) in zip(known, tok) if s > 0))
        if not self.span_head:
            spans = _longest_non_overlapping(spans)
        item.labels = spans
        return len(example.entities) - len(spans)

    def collate(self, labels: list[Any], length: int, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """``span_labels`` ``[B, m, L, L]`` (span heads) or ``tags`` ``[B, L]`` int64 (BIO heads)."""
        if self.span_head:
            return {"span_labels": span_labels_dense(labels, len(self.types), length)}
        tags = torch.zeros(len(labels), length, dtype=torch.long)
        for b, spans in enumerate(labels):
            for t, s, e in spans:
                tags[b, s] = 2 * t + 1
                tags[b, s + 1:e + 1] = 2 * t + 2
        return {"tags": tags}

    def loss(self, head: nn.Module, outputs: Tensor, batch: dict[str, Tensor]) -> Tensor:
        """Multi-label CE (span heads), CRF NLL or token cross-entropy (BIO heads); batch mean."""
        if self.span_head:
            return multilabel_categorical_crossentropy(batch["span_labels"].flatten(2),
                                                       outputs.float().flatten(2)).mean()
        mask = _content_mask(batch)
        emissions = outputs.float()
        if head.crf is not None:
            return head.crf(emissions, batch["tags"], mask)
        return nn.functional.cross_entropy(emissions[mask], batch["tags"][mask])

    def decode(self, head: nn.Module, outputs: Tensor, batch: dict[str, Tensor], items: Sequence[Encoded]
               ) -> list[set[Span]]:
        """Entities ``(type, char_start, char_end)`` per item."""
        if self.span_head:
            found = decode_spans(outputs, 0.0, batch["special_tokens_mask"])
            token_spans = [[(t, s, e) for t, s, e in f] for f in found]
        else:
            mask = _content_mask(batch)
            if head.crf is not None:
                paths = head.crf.decode(outputs, mask).masked_fill(~mask, 0)
            else:
                paths = outputs.argmax(-1).masked_fill(~mask, 0)
            names = np.asarray(bio_label_names(self.types))
            index = {t: i for i, t in enumerate(self.types)}
            token_spans = [[(index[t], s, e) for t, s, e in bio_to_spans(names[row].tolist())]
                           for row in paths.numpy()]
        out = []
        for spans, item in zip(token_spans, items, strict=True):
            if not spans:
                out.append(set())
                continue
            chars = token_spans_to_char_spans([(s, e) for _, s, e in spans], item.offsets)
            out.append({(self.types[t], int(c0), int(c1)) for (t, _, _), (c0, c1) in zip(spans, chars)})
        return out

    def gold(self, example: NerExample) -> set[Span]:
        """All gold entities (also those the tokenisation or the head cannot express)."""
        return {(e.type, e.start, e.end) for e in example.entities}

    def score(self, predictions: Sequence[set[Span]], gold: Sequence[set[Span]]) -> dict[str, float]:
        """Entity-level micro precision / recall / F1, x100."""
        prf = entity_prf(predictions, gold)
        return {"precision": 100 * prf.precision, "recall": 100 * prf.recall, "f1": 100 * prf.f1}

    def to_json(self, prediction: set[Span], item: Encoded) -> dict[str, Any]:
        """``{"text", "entities": [{"type", "start", "end", "text"}], "truncated"}`` (``end`` exclusive)."""
        ents = [{"type": t, "start": s, "end": e, "text": item.text[s:e]} for t, s, e in
                sorted(prediction, key=lambda x: (x[1], x[2], x[0]))]
        return {"text": item.text, "entities": ents, "truncated": item.truncated}



@dataclass
class NerConfig(ExtractionConfig):
    """Options of the NER recipe: :class:`ExtractionConfig` plus ``head`` (one of :data:`HEADS`),
    ``crf_lr_multiplier`` (``λ`` of the CRF re-parameterisation; 1 = off) and ``lenient_bio`` (``--lenient-bio``:
    an ``I-X`` tag that does not continue an entity starts a new one, conlleval's rule; default: such a file is
    refused naming its line)."""

    data: str = "conll2003"
    head: str = "global_pointer"
    crf_lr_multiplier: float = 1.0
    lenient_bio: bool = False


def entity_types(examples: Sequence[NerExample]) -> tuple[str, ...]:
    """Sorted entity types occurring in ``examples``."""
    return tuple(sorted({e.type for ex in examples for e in ex.entities}))


def train_ner(cfg: NerConfig, trainer_cfg: TrainerConfig, log=print) -> dict[str, Any]:
    """Train an NER model on ``cfg.data``; the best dev-F1 model lands in ``<output>/best``.

    Returns the results dict of :func:`kexue.tasks.extraction_common.train_extraction` (dev/test precision, recall,
    F1 x100, train time per epoch), also written to ``results.json``.

    Raises:
        ConfigError: bad options or data. DataFormatError: malformed data.
    """
    # data refusals first (reading is cheap): a refused run leaves nothing on disk, not even a locked empty folder
    full = load_extraction_splits("ner", cfg.data, lenient_bio=cfg.lenient_bio)
    prepare_run_dir(trainer_cfg, {"task": "ner", "ner": cfg}, log=log)  # refusals before any work
    splits = limit_splits(full, cfg.train_limit, cfg.eval_limit)
    task = NerTask(entity_types(full.train), cfg.head, cfg.head_size, cfg.crf_lr_multiplier)
    return train_extraction(task, cfg, trainer_cfg, splits, log)


def load_ner_model(path: str) -> ExtractionModel:
    """The NER model of a run folder (its ``best/``) or a saved model folder (raises CheckpointError)."""
    return load_extraction_model(path, "ner", NerTask.from_meta)
