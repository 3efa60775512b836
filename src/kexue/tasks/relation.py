"""The relation-extraction recipe: GPLinker (https://kexue.fm/archives/8888) over an encoder.

Three pointers (entity with 2 heads, head–head and tail–tail with one head per predicate; Efficient GlobalPointer
by default as in the author's ``duie_v1.py``), sparse multi-label CE, decoding by the head–head ∩ tail–tail test.
Evaluation: triple-level micro P/R/F1 on exact ``(subject, predicate, object)`` strings against the full gold set
(triples whose subject or object cannot be located on the tokenisation, or were truncated away, count as misses).
Gold subjects and objects are located at their first occurrence in the text (the reader's convention, as GPLinker).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor, nn

from kexue.data.readers.relation import RelationExample, RelationSchema
from kexue.extraction.gplinker_relation import (GPLinkerRelation, decode_relations, encode_relations,
                                                example_quintuples, gplinker_loss)
from kexue.metrics.extraction import triple_prf
from kexue.tasks.extraction_common import (Encoded, ExtractionConfig, ExtractionModel, keep_top_cells,
                                           load_extraction_model, train_extraction)
from kexue.tasks.extraction_data import load_extraction_splits
from kexue.train import TrainerConfig, prepare_run_dir

Triple = tuple[str, int, int, str, str, int, int]
"""``(subject, s_start, s_end, predicate, object, o_start, o_end)``, character offsets with exclusive ends."""


@dataclass
class RelationTask:
    """Predicates and head options of the relation recipe (implements ``ExtractionTask``).

    Args:
        predicates: relation labels in schema order (head ``p`` of the link pointers).
        head_size: pointer ``d``. efficient: Efficient GlobalPointer pointers (else standard GlobalPointer).
        max_candidates: decoding considers at most this many highest-scoring cells of each pointer head per text
            (subject spans, object spans, head–head and tail–tail links of each predicate;
            :func:`kexue.tasks.extraction_common.keep_top_cells`).
    """

    predicates: tuple[str, ...]
    head_size: int = 64
    efficient: bool = True
    max_candidates: int = 64
    name: str = "relation"

    def __post_init__(self) -> None:
        self.predicates = tuple(self.predicates)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> RelationTask:
        """Rebuild from :meth:`meta`."""
        return cls(tuple(meta["predicates"]), int(meta["head_size"]), bool(meta["efficient"]))

    def meta(self) -> dict[str, Any]:
        """Predicates (the schema) and head options."""
        return {"predicates": list(self.predicates), "head_size": self.head_size, "efficient": self.efficient}

    def build_head(self, hidden_size: int) -> nn.Module:
        """The three GPLinker pointers."""
        return GPLinkerRelation(hidden_size, len(self.predicates), self.head_size, self.efficient)

    def encode(self, example: RelationExample, item: Encoded) -> int:
        """Token quintuples of the gold triples; returns how many triples cannot be expressed."""
        index = {p: i for i, p in enumerate(self.predicates)}
        quints, dropped = example_quintuples(example, item.offsets, index)
        quints = [q for q in quints if q[0] > 0 and q[3] > 0]
        item.labels = quints
        return len(example.triples) - len(quints)

    def collate(self, labels: list[Any], length: int, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Sparse labels ``entity_labels`` ``[B, 2, K1]``, ``head_labels`` / ``tail_labels`` ``[B, P, K]``."""
        ent, head, tail = encode_relations(labels, len(self.predicates), length)
        return {"entity_labels": ent, "head_labels": head, "tail_labels": tail}

    def loss(self, head: nn.Module, outputs: tuple[Tensor, ...], batch: dict[str, Tensor]) -> Tensor:
        """GPLinker's sparse multi-label CE, summed over pointers and heads, batch mean."""
        return gplinker_loss([o.float() for o in outputs],
                             [batch["entity_labels"], batch["head_labels"], batch["tail_labels"]])

    def decode(self, head: nn.Module, outputs: tuple[Tensor, ...], batch: dict[str, Tensor],
               items: Sequence[Encoded]) -> list[set[Triple]]:
        """Triples with character offsets per item."""
        entity, hh, tt = (keep_top_cells(o, self.max_candidates) for o in outputs)
        quints = decode_relations(entity, hh, tt, 0.0, batch["special_tokens_mask"])
        out = []
        for found, item in zip(quints, items, strict=True):
            off, text = np.asarray(item.offsets), item.text
            out.append({(text[off[sh, 0]:off[st, 1]], int(off[sh, 0]), int(off[st, 1]), self.predicates[p],
                         text[off[oh, 0]:off[ot, 1]], int(off[oh, 0]), int(off[ot, 1]))
                        for sh, st, p, oh, ot in found})
        return out

    def gold(self, example: RelationExample) -> set[Triple]:
        """All gold triples with their (first-occurrence) character spans."""
        return {(t.subject, t.subject_start, t.subject_end, t.predicate, t.object, t.object_start, t.object_end)
                for t in example.triples}

    def score(self, predictions: Sequence[set[Triple]], gold: Sequence[set[Triple]]) -> dict[str, float]:
        """Triple-level micro P/R/F1 x100 on ``(subject, predicate, object)`` strings (offsets ignored)."""
        def strings(docs: Sequence[set[Triple]]) -> list[set[tuple[str, str, str]]]:
            return [{(t[0], t[3], t[4]) for t in doc} for doc in docs]
        prf = triple_prf(strings(predictions), strings(gold))
        return {"precision": 100 * prf.precision, "recall": 100 * prf.recall, "f1": 100 * prf.f1}

    def to_json(self, prediction: set[Triple], item: Encoded) -> dict[str, Any]:
        """``{"text", "relations": [{"subject", "subject_start", "subject_end", "predicate", "object",
        "object_start", "object_end"}], "truncated"}``."""
        keys = ("subject", "subject_start", "subject_end", "predicate", "object", "object_start", "object_end")
        rels = [dict(zip(keys, t)) for t in sorted(prediction, key=lambda t: (t[1], t[5], t[3]))]
        return {"text": item.text, "relations": rels, "truncated": item.truncated}


@dataclass
class RelationConfig(ExtractionConfig):
    """Options of the relation recipe: :class:`ExtractionConfig` plus ``efficient`` pointers."""

    data: str = "duie2.0_subset"
    efficient: bool = True


def train_relation(cfg: RelationConfig, trainer_cfg: TrainerConfig, log=print) -> dict[str, Any]:
    """Train GPLinker on ``cfg.data`` (schema from the dataset); results as :func:`train_extraction`."""
    # data refusals first (reading is cheap): a refused run leaves nothing on disk, not even a locked empty folder
    splits = load_extraction_splits("relation", cfg.data, train_limit=cfg.train_limit, eval_limit=cfg.eval_limit)
    prepare_run_dir(trainer_cfg, {"task": "relation", "relation": cfg}, log=log)  # refusals before any work
    schema: RelationSchema = splits.schema  # type: ignore[assignment]
    task = RelationTask(schema.predicates, cfg.head_size, cfg.efficient)
    return train_extraction(task, cfg, trainer_cfg, splits, log)


def load_relation_model(path: str) -> ExtractionModel:
    """The relation model of a run folder or a saved model folder (raises CheckpointError)."""
    return load_extraction_model(path, "relation", RelationTask.from_meta)
