"""The event-extraction recipe: GPLinker for events (https://kexue.fm/archives/8926) over an encoder.

The trigger is one more role: argument recognition is span scoring over ``(event_type, role)`` labels; arguments
of one event are linked by head–head and tail–tail pointers and grouped by clique search. Evaluation (against the
full gold set): DuEE-style argument-level micro P/R/F1 on ``(event_type, role, text, start)`` with triggers excluded
(the selection metric ``f1``), and event-level P/R/F1 (``event_f1``: a predicted event counts when its whole
argument set, trigger included, equals a gold event) — see :mod:`kexue.metrics.extraction`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from kexue.data.readers.event import TRIGGER_ROLE, EventExample, EventSchema
from kexue.extraction.gplinker_event import (GPLinkerEvent, decode_events, encode_events, event_arguments_as_text,
                                             example_events, gold_event_arguments)
from kexue.extraction.gplinker_relation import gplinker_loss
from kexue.metrics.extraction import event_argument_prf, event_prf
from kexue.tasks.extraction_common import (Encoded, ExtractionConfig, ExtractionModel, keep_top_cells,
                                           load_extraction_model, train_extraction)
from kexue.tasks.extraction_data import load_extraction_splits
from kexue.train import TrainerConfig, prepare_run_dir

EventArgs = tuple[tuple[str, str, str, int], ...]
"""One event: sorted ``(event_type, role, text, char_start)`` arguments, trigger included."""


@dataclass
class EventTask:
    """Argument labels and head options of the event recipe (implements ``ExtractionTask``).

    Args:
        labels: ``(event_type, role)`` pairs, the trigger under :data:`TRIGGER_ROLE` (``EventSchema.labels()``).
        head_size: pointer ``d``. efficient: Efficient GlobalPointer pointers.
        max_candidates: decoding considers at most this many highest-scoring argument spans per text (all labels
            together; bounds the clique search, see :func:`kexue.tasks.extraction_common.keep_top_cells`).
    """

    labels: tuple[tuple[str, str], ...]
    head_size: int = 64
    efficient: bool = True
    max_candidates: int = 48
    name: str = "event"

    def __post_init__(self) -> None:
        self.labels = tuple((str(t), str(r)) for t, r in self.labels)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> EventTask:
        """Rebuild from :meth:`meta`."""
        return cls(tuple(tuple(x) for x in meta["labels"]), int(meta["head_size"]), bool(meta["efficient"]))

    def meta(self) -> dict[str, Any]:
        """Labels (the schema) and head options."""
        return {"labels": [list(x) for x in self.labels], "trigger_role": TRIGGER_ROLE, "head_size": self.head_size,
                "efficient": self.efficient}

    def build_head(self, hidden_size: int) -> nn.Module:
        """The three GPLinker event pointers."""
        return GPLinkerEvent(hidden_size, len(self.labels), self.head_size, self.efficient)

    def encode(self, example: EventExample, item: Encoded) -> int:
        """Token-level events; returns the number of gold arguments (triggers included) that cannot be expressed."""
        index = {lab: i for i, lab in enumerate(self.labels)}
        events, dropped = example_events(example, item.offsets, index)
        kept = [[a for a in ev if a[1] > 0] for ev in events]
        item.labels = [ev for ev in kept if ev]
        total = sum(len(ev.all_arguments()) for ev in example.events)
        return total - sum(len(ev) for ev in item.labels)

    def collate(self, labels: list[Any], length: int, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Sparse labels ``argu_labels`` ``[B, n_labels, K]``, ``head_link_labels`` / ``tail_link_labels``."""
        argu, head, tail = encode_events(labels, len(self.labels), length)
        return {"argu_labels": argu, "head_link_labels": head, "tail_link_labels": tail}

    def loss(self, head: nn.Module, outputs: tuple[Tensor, ...], batch: dict[str, Tensor]) -> Tensor:
        """Sparse multi-label CE over the three pointers, batch mean."""
        return gplinker_loss([o.float() for o in outputs],
                             [batch["argu_labels"], batch["head_link_labels"], batch["tail_link_labels"]])

    def decode(self, head: nn.Module, outputs: tuple[Tensor, ...], batch: dict[str, Tensor],
               items: Sequence[Encoded]) -> list[list[EventArgs]]:
        """Events (with triggers) per item, arguments as text with character starts."""
        argu = keep_top_cells(outputs[0], self.max_candidates, per_head=False)
        events = decode_events(argu, outputs[1], outputs[2], self.labels, TRIGGER_ROLE, 0.0,
                               batch["special_tokens_mask"])
        return [event_arguments_as_text(ev, item.text, item.offsets) for ev, item in zip(events, items, strict=True)]

    def gold(self, example: EventExample) -> list[EventArgs]:
        """All gold events."""
        return gold_event_arguments(example)

    def score(self, predictions: Sequence[list[EventArgs]], gold: Sequence[list[EventArgs]]) -> dict[str, float]:
        """Argument-level P/R/F1 x100 (``f1``) and event-level F1 x100 (``event_f1``)."""
        arg = event_argument_prf(predictions, gold, TRIGGER_ROLE)
        ev = event_prf(predictions, gold)
        return {"precision": 100 * arg.precision, "recall": 100 * arg.recall, "f1": 100 * arg.f1,
                "event_f1": 100 * ev.f1}

    def to_json(self, prediction: list[EventArgs], item: Encoded) -> dict[str, Any]:
        """``{"text", "events": [{"event_type", "trigger": {"text", "start", "end"}, "arguments": [{"role",
        "text", "start", "end"}]}], "truncated"}`` (``end`` exclusive)."""
        events = []
        for event in prediction:
            args = [{"role": r, "text": t, "start": s, "end": s + len(t)} for _, r, t, s in event]
            trigger = next(a for a in args if a["role"] == TRIGGER_ROLE)
            events.append({"event_type": event[0][0], "trigger": {k: trigger[k] for k in ("text", "start", "end")},
                           "arguments": [a for a in args if a["role"] != TRIGGER_ROLE]})
        return {"text": item.text, "events": events, "truncated": item.truncated}


@dataclass
class EventConfig(ExtractionConfig):
    """Options of the event recipe: :class:`ExtractionConfig` plus ``efficient`` pointers."""

    data: str = "duee1.0"
    efficient: bool = True


def train_event(cfg: EventConfig, trainer_cfg: TrainerConfig, log=print) -> dict[str, Any]:
    """Train GPLinker-events on ``cfg.data`` (schema from the dataset); results as :func:`train_extraction`."""
    # data refusals first (reading is cheap): a refused run leaves nothing on disk, not even a locked empty folder
    splits = load_extraction_splits("event", cfg.data, train_limit=cfg.train_limit, eval_limit=cfg.eval_limit)
    prepare_run_dir(trainer_cfg, {"task": "event", "event": cfg}, log=log)  # refusals before any work
    schema: EventSchema = splits.schema  # type: ignore[assignment]
    task = EventTask(tuple(schema.labels()), cfg.head_size, cfg.efficient)
    return train_extraction(task, cfg, trainer_cfg, splits, log)


def load_event_model(path: str) -> ExtractionModel:
    """The event model of a run folder or a saved model folder (raises CheckpointError)."""
    return load_extraction_model(path, "event", EventTask.from_meta)
