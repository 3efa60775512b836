"""Spec §14.4: a scripted model whose best continuation is [B, C, END] (greedy would take A); min_ends=2."""

from __future__ import annotations

import math

import torch

from kexue.generation.beam import beam_search

A, B, C, D, END = range(5)
DEFAULT = [0.3, 0.25, 0.2, 0.15, 0.1]
TABLE = {
    (): [0.5, 0.4, 0.05, 0.03, 0.02],
    (A,): [0.3, 0.25, 0.2, 0.15, 0.1],
    (A, A): [0.1, 0.1, 0.1, 0.2, 0.5],
    (B,): [0.025, 0.025, 0.9, 0.025, 0.025],
    (B, C): [0.0125, 0.0125, 0.0125, 0.0125, 0.95],
    (B, C, END): [0.025, 0.025, 0.025, 0.025, 0.9],
}


class ScriptedStepper:
    """Next-token log-probabilities looked up from each row's target prefix (the stepper protocol of beam.py)."""

    def __init__(self, batch: int) -> None:
        self.prefixes = [()] * batch

    @staticmethod
    def logits(prefix) -> list[float]:
        return [math.log(p) for p in TABLE.get(prefix, DEFAULT)]

    def first(self) -> torch.Tensor:
        return torch.tensor([self.logits(p) for p in self.prefixes])

    def repeat_rows(self, n: int) -> None:
        self.prefixes = [p for p in self.prefixes for _ in range(n)]

    def select(self, rows: torch.Tensor) -> None:
        self.prefixes = [self.prefixes[i] for i in rows.tolist()]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.prefixes = [p + (t,) for p, t in zip(self.prefixes, tokens.tolist())]
        return torch.tensor([self.logits(p) for p in self.prefixes])


def run(batch=1, **kwargs):
    stepper = ScriptedStepper(batch)
    options = dict(num_beams=2, max_new_tokens=6, end_token_id=END)
    options.update(kwargs)
    return beam_search(stepper, stepper.first(), **options)


def test_beam_returns_the_best_continuation_not_the_greedy_one():
    # step 2 candidates: B C = 0.4 * 0.9 = 0.36 > A A = 0.15; step 3: B C END = 0.342 is best and finished
    (seq, score, finished), = run()[0]
    assert seq == [B, C, END] and finished
    assert math.isclose(score, math.log(0.4 * 0.9 * 0.95), rel_tol=1e-5)


def test_min_ends_two_keeps_decoding_to_the_second_end():
    (seq, score, finished), = run(min_ends=2)[0]
    assert seq == [B, C, END, END] and finished
    assert math.isclose(score, math.log(0.4 * 0.9 * 0.95 * 0.9), rel_tol=1e-5)


def test_min_ends_two_cut_at_max_new_tokens():
    (seq, _, finished), = run(min_ends=2, max_new_tokens=3)[0]
    assert seq == [B, C, END] and not finished


def test_every_example_of_a_batch_gets_the_same_answer():
    results = run(batch=3)
    assert [r[0][0] for r in results] == [[B, C, END]] * 3


def test_num_return_sequences_lists_the_winner_first():
    hyps = run(num_beams=2, num_return_sequences=2)[0]
    assert hyps[0][0] == [B, C, END]
    # step 3's top two are B C END (0.342, the answer) and A A END (0.15 * 0.5 = 0.075, also finished)
    assert hyps[1][0] == [A, A, END] and hyps[1][2]
    assert math.isclose(hyps[1][1], math.log(0.5 * 0.3 * 0.5), rel_tol=1e-5)


def test_length_penalty_divides_by_length():
    (seq, score, _), = run(length_penalty=1.0)[0]
    assert seq == [B, C, END]
    assert math.isclose(score, math.log(0.4 * 0.9 * 0.95) / 3, rel_tol=1e-5)
