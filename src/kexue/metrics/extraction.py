"""Extraction metrics: entity / triple / event-argument precision, recall and F1 (micro-averaged sets).

All scores are micro averages over a corpus: per document the predictions and the gold items are turned into
sets (duplicates count once), ``tp = Σ_doc |pred ∩ gold|``, ``precision = tp / Σ|pred|``,
``recall = tp / Σ|gold|``, ``f1 = 2·tp / (Σ|pred| + Σ|gold|)``; a zero denominator gives 0.

Sources: entity F1 as CoNLL ``conlleval`` / seqeval (default mode); triple F1 and the event metrics as in the
GPLinker articles' evaluation code, https://kexue.fm/archives/8888 and https://kexue.fm/archives/8926;
the training-time GlobalPointer F1 of https://kexue.fm/archives/8373.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

from torch import Tensor

from kexue.extraction.spans import bio_to_spans


@dataclass(frozen=True)
class PRF:
    """Micro precision / recall / F1 and the counts they come from."""

    precision: float
    recall: float
    f1: float
    tp: int
    n_pred: int
    n_gold: int

    @classmethod
    def from_counts(cls, tp: int, n_pred: int, n_gold: int) -> PRF:
        """Scores from counts (0 where a denominator is 0)."""
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * tp / (n_pred + n_gold) if n_pred + n_gold else 0.0
        return cls(precision, recall, f1, tp, n_pred, n_gold)


def set_prf(pred: Iterable[Iterable[Hashable]], gold: Iterable[Iterable[Hashable]]) -> PRF:
    """Micro P/R/F1 of per-document item sets (entities, triples, arguments...).

    Args:
        pred, gold: one iterable of hashable items per document, same number of documents.

    Raises:
        ValueError: different numbers of documents.
    """
    pred, gold = list(pred), list(gold)
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predicted documents but {len(gold)} gold documents")
    tp = n_pred = n_gold = 0
    for p, g in zip(pred, gold, strict=True):
        p, g = set(p), set(g)
        tp += len(p & g)
        n_pred += len(p)
        n_gold += len(g)
    return PRF.from_counts(tp, n_pred, n_gold)


def entity_prf(pred: Iterable[Iterable[tuple]], gold: Iterable[Iterable[tuple]]) -> PRF:
    """Entity-level P/R/F1: an entity (e.g. ``(type, start, end)``) counts when type and both ends match."""
    return set_prf(pred, gold)


def bio_entity_prf(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> PRF:
    """Entity-level P/R/F1 of BIO tag sequences, chunked with the conlleval rules (equals seqeval's default
    ``precision_score``/``recall_score``/``f1_score``, micro average).

    Raises:
        ValueError: different numbers of sequences, a pair of sequences of different lengths, or a bad tag.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} gold sequences but {len(y_pred)} predicted")
    for n, (t, p) in enumerate(zip(y_true, y_pred, strict=True)):
        if len(t) != len(p):
            raise ValueError(f"sequence {n}: {len(t)} gold tags but {len(p)} predicted")
    return set_prf((bio_to_spans(p) for p in y_pred), (bio_to_spans(t) for t in y_true))


def triple_prf(pred: Iterable[Iterable[tuple[str, str, str]]], gold: Iterable[Iterable[tuple[str, str, str]]]) -> PRF:
    """Triple-level P/R/F1: a ``(subject, predicate, object)`` counts when all three strings match exactly
    (the GPLinker relation evaluation, https://kexue.fm/archives/8888)."""
    return set_prf(pred, gold)


def event_argument_prf(pred: Iterable[Iterable[Iterable[tuple[str, str, str, int]]]],
                       gold: Iterable[Iterable[Iterable[tuple[str, str, str, int]]]],
                       trigger_role: str) -> PRF:
    """DuEE-style argument-level P/R/F1, as in the GPLinker event evaluation (https://kexue.fm/archives/8926).

    Each document is a list of events; an event is an iterable of arguments
    ``(event_type, role, argument_text, char_start)``. Per document, the items are the **set** of arguments of
    all its events with the trigger role removed, so an argument is right when event type, role, exact text and
    start offset all match some gold argument of that document, whichever event it sits in (event grouping
    does not matter; an argument shared by two same-type events counts once). Micro-averaged over documents.
    This is not the official LIC2020 DuEE scorer (which matches argument strings by character-level F1 and
    accepts aliases).
    """
    def args(docs: Iterable[Iterable[Iterable[tuple]]]) -> list[set]:
        return [{a for event in doc for a in event if a[1] != trigger_role} for doc in docs]

    return set_prf(args(pred), args(gold))


def event_prf(pred: Iterable[Iterable[Iterable[tuple[str, str, str, int]]]],
              gold: Iterable[Iterable[Iterable[tuple[str, str, str, int]]]]) -> PRF:
    """Event-level P/R/F1: a predicted event (its full argument set, trigger included) is right when it equals a
    gold event of the same document exactly (https://kexue.fm/archives/8926)."""
    def events(docs: Iterable[Iterable[Iterable[tuple]]]) -> list[set]:
        return [{tuple(sorted(set(event))) for event in doc} for doc in docs]

    return set_prf(events(pred), events(gold))


def global_pointer_f1(y_true: Tensor, logits: Tensor, threshold: float = 0.0) -> float:
    """Training-time GlobalPointer F1 ``2·Σ(y·ŷ) / Σ(y + ŷ)`` with ``ŷ = 1[logits > threshold]``.

    Args:
        y_true: multi-hot labels ``[B, heads, L, L]``; logits: same shape.

    Source: https://kexue.fm/archives/8373.
    """
    y_pred = (logits > threshold).to(y_true.dtype)
    denom = float((y_true + y_pred).sum())
    return 2.0 * float((y_true * y_pred).sum()) / denom if denom else 0.0
