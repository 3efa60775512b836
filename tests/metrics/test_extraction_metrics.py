"""Extraction metrics: parity with seqeval on real BIO data, hand-computed triple / event values."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from seqeval.metrics import f1_score, precision_score, recall_score

from kexue.data.readers.ner import read_conll_bio
from kexue.metrics.extraction import (
    PRF,
    bio_entity_prf,
    event_argument_prf,
    event_prf,
    global_pointer_f1,
    triple_prf,
)


def _corrupt(tags: list[list[str]], labels: list[str], rate: float, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [[rng.choice(labels) if rng.random() < rate else t for t in seq] for seq in tags]


@pytest.mark.parametrize("name, sep", [("conll2003/bio/valid.txt", " "), ("people_daily_ner/example.dev", "")])
def test_bio_entity_prf_matches_seqeval(kexue_data: Path, name: str, sep: str) -> None:
    examples = read_conll_bio(kexue_data / name, sep=sep)[:600]
    gold = [list(ex.tags) for ex in examples]
    labels = sorted({t for seq in gold for t in seq})
    for rate, seed in [(0.0, 0), (0.05, 1), (0.3, 2)]:  # corrupted predictions include invalid BIO (I-X after O)
        pred = _corrupt(gold, labels, rate, seed)
        ours = bio_entity_prf(gold, pred)
        assert ours.precision == pytest.approx(precision_score(gold, pred), abs=1e-12)
        assert ours.recall == pytest.approx(recall_score(gold, pred), abs=1e-12)
        assert ours.f1 == pytest.approx(f1_score(gold, pred), abs=1e-12)
    assert bio_entity_prf(gold, gold).f1 == 1.0


def test_bio_entity_prf_errors() -> None:
    with pytest.raises(ValueError, match="sequence 0"):
        bio_entity_prf([["O", "B-A"]], [["O"]])


def test_triple_prf_hand_values() -> None:
    gold = [{("a", "p", "b"), ("a", "q", "c")}, {("x", "p", "y")}]
    pred = [[("a", "p", "b"), ("a", "p", "b"), ("a", "p", "c")], []]  # duplicates count once
    prf = triple_prf(pred, gold)
    assert (prf.tp, prf.n_pred, prf.n_gold) == (1, 2, 3)
    assert prf.precision == 0.5 and prf.recall == pytest.approx(1 / 3) and prf.f1 == pytest.approx(0.4)
    assert PRF.from_counts(0, 0, 0).f1 == 0.0


def test_event_metrics_hand_values() -> None:
    gold = [[
        (("win", "trigger", "beat", 5), ("win", "winner", "A", 0), ("win", "loser", "B", 10)),
        (("win", "trigger", "won", 20), ("win", "winner", "A", 0)),
    ]]
    pred = [[
        # right arguments, but grouped into one event: argument F1 is perfect, event F1 is not
        (("win", "trigger", "beat", 5), ("win", "trigger", "won", 20), ("win", "winner", "A", 0),
         ("win", "loser", "B", 10)),
        (("win", "trigger", "won", 20), ("win", "winner", "A", 0), ("win", "loser", "B", 11)),
    ]]
    args = event_argument_prf(pred, gold, trigger_role="trigger")
    # gold args {(winner, A, 0), (loser, B, 10)}; predicted {(winner, A, 0), (loser, B, 10), (loser, B, 11)}
    assert (args.tp, args.n_pred, args.n_gold) == (2, 3, 2)
    events = event_prf(pred, gold)
    assert (events.tp, events.n_pred, events.n_gold) == (0, 2, 2)
    assert event_prf(gold, gold).f1 == 1.0


def test_global_pointer_f1() -> None:
    y = torch.zeros(1, 2, 3, 3)
    y[0, 0, 0, 1] = y[0, 1, 2, 2] = 1
    logits = torch.full((1, 2, 3, 3), -1.0)
    logits[0, 0, 0, 1] = logits[0, 0, 1, 1] = 2.0
    assert global_pointer_f1(y, logits) == pytest.approx(2 * 1 / (2 + 2))
