"""TrieConstraint: every output is a trie key + the end token, under random and adversarial logits; look-ahead."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kexue.errors import ConfigError
from kexue.generation import TokenTrie, TrieConstraint, generate, lookahead_reweight, lookahead_weights

from _gen_models import END, VOCAB, sources, tiny_model

MODEL = tiny_model("roformer", seed=3)
TOKENS = [t for t in range(VOCAB) if t != END]


class Adversary:
    """Replaces the model's logits by seeded random values mixed with -inf, +inf, NaN and huge numbers."""

    def __init__(self, seed: int, p_neg: float, p_pos: float, p_nan: float) -> None:
        self.g = torch.Generator().manual_seed(seed)
        self.p = (p_neg, p_pos, p_nan)

    def __call__(self, target_ids, logits, rows):
        x = torch.randn(logits.shape, generator=self.g) * 1e4
        u = torch.rand(logits.shape, generator=self.g)
        p_neg, p_pos, p_nan = self.p
        x[u < p_neg] = -math.inf
        x[(u >= p_neg) & (u < p_neg + p_pos)] = math.inf
        x[(u >= p_neg + p_pos) & (u < p_neg + p_pos + p_nan)] = math.nan
        return x


keys_strategy = st.lists(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=5), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=keys_strategy, batch=st.integers(1, 3), strategy=st.sampled_from(["greedy", "beam", "sample"]),
       beams=st.integers(2, 4), seed=st.integers(0, 2**16), adversarial=st.booleans(),
       p_neg=st.sampled_from([0.0, 0.5, 0.99, 1.0]), p_pos=st.sampled_from([0.0, 0.01, 0.3]),
       p_nan=st.sampled_from([0.0, 0.2]))
def test_every_output_is_a_key_plus_end(keys, batch, strategy, beams, seed, adversarial, p_neg, p_pos, p_nan):
    trie = TokenTrie.build(keys)
    processors = [Adversary(seed, p_neg, p_pos, p_nan)] if adversarial else []
    processors.append(TrieConstraint(trie, END))
    options = dict(strategy=strategy, end_token_id=END, max_new_tokens=trie.max_length + 1,
                   logits_processor=processors)
    if strategy == "beam":
        options.update(num_beams=beams, num_return_sequences=beams)
    elif strategy == "sample":
        options.update(num_return_sequences=2, generator=torch.Generator().manual_seed(seed), top_p=0.9)
    out = generate(MODEL, sources((7, 4, 2)[:batch], seed=seed), **options)
    key_set = {tuple(k) for k in keys}
    for b, row in enumerate(out.tolist()):
        for n, seq in enumerate(row):
            score = out.scores[b, n].item()
            if strategy == "beam" and n > 0 and score == -math.inf:
                assert seq == []  # fewer distinct keys than beams: padding hypotheses
                continue
            assert not math.isnan(score) and math.isfinite(score)
            assert bool(out.finished[b, n])
            assert seq[-1] == END and tuple(seq[:-1]) in key_set


def test_allowed_sets_and_the_renormalised_distribution():
    trie = TokenTrie.build([[5, 6], [5, 7, 8], [9]])
    c = TrieConstraint(trie, END)
    assert c.allowed([]) == [5, 9] and c.allowed([5]) == [6, 7] and c.allowed([5, 6]) == [END]
    assert c.allowed([4]) == [END]  # outside the trie: end only
    logits = torch.randn(3, VOCAB)
    out = c(torch.tensor([[5, 7], [5, 7], [5, 7]]), logits, torch.arange(3))
    probs = out.softmax(-1)
    assert torch.allclose(probs[:, 8], torch.ones(3)) and probs.sum(-1).allclose(torch.ones(3))
    out = c(torch.tensor([[5]]), logits[:1], torch.arange(1))
    p = logits[0, [6, 7]].softmax(-1)
    torch.testing.assert_close(out.softmax(-1)[0, [6, 7]], p)
    with pytest.raises(ConfigError, match="not in the trie"):
        TrieConstraint(trie, END, on_empty="raise")(torch.tensor([[4]]), logits[:1], torch.arange(1))


def test_all_minus_infinity_inside_the_allowed_set_becomes_uniform_not_nan():
    trie = TokenTrie.build([[5], [6], [7]])
    logits = torch.zeros(1, VOCAB)
    logits[0, [5, 6, 7]] = -math.inf
    out = TrieConstraint(trie, END)(torch.zeros(1, 0, dtype=torch.long), logits, torch.arange(1))
    probs = out.softmax(-1)[0]
    torch.testing.assert_close(probs[[5, 6, 7]], torch.full((3,), 1 / 3))
    assert probs.sum().item() == pytest.approx(1.0)


def test_trie_token_outside_the_vocabulary_is_refused():
    trie = TokenTrie.build([[VOCAB + 5]])
    with pytest.raises(ConfigError, match="outside the model's vocabulary"):
        generate(MODEL, sources((4,)), end_token_id=END, max_new_tokens=2, logits_processor=TrieConstraint(trie, END))


def test_a_key_that_is_a_prefix_of_another_allows_end_and_continuation():
    trie = TokenTrie.build([[5], [5, 6]])
    assert sorted(TrieConstraint(trie, END).allowed([5])) == sorted([6, END])


def test_generate_refuses_too_few_new_tokens():
    trie = TokenTrie.build([[5, 6, 7]])
    with pytest.raises(ConfigError, match="--max-new-tokens"):
        generate(MODEL, sources((4,)), end_token_id=END, max_new_tokens=3, logits_processor=TrieConstraint(trie, END))


SEP = 2
LA_TRIE = TokenTrie.build([[10, SEP, 20, 21], [10, SEP, 30, 31], [10, SEP, 30, 32], [11, SEP, 20, 21]])


def test_lookahead_delta_two_gives_cube_root():
    # prefix [10, SEP]: LCS(prefix, q) = 0; key [10,SEP,20,21] has LCS 2 with q -> Δ = 2, w = 3; 30-keys Δ = 0
    query = [20, 21]
    assert lookahead_weights(LA_TRIE, [10, SEP], query, SEP, END) == {20: 3.0, 30: 1.0}
    probs = torch.full((VOCAB,), 0.01)
    probs[20], probs[30] = 0.2, 0.3
    out = lookahead_reweight(probs, [10, SEP], LA_TRIE, query, SEP, END)
    assert out[20].item() == pytest.approx(0.2 ** (1 / 3))
    assert out[30].item() == pytest.approx(0.3)


def test_lookahead_all_delta_zero_leaves_probabilities_unchanged():
    probs = torch.rand(VOCAB)
    assert torch.equal(lookahead_reweight(probs, [10, SEP], LA_TRIE, [99, 98], SEP, END), probs)


def test_lookahead_does_nothing_before_the_subject_is_complete():
    assert lookahead_weights(LA_TRIE, [10], [SEP, 20, 21], SEP, END) == {}
    assert lookahead_weights(LA_TRIE, [], [10, 20, 21], SEP, END) == {}
    assert lookahead_weights(LA_TRIE, [10, SEP, 20], [20, 21], SEP, END) == {}  # |A| = 1


def test_constraint_with_lookahead_renormalises_p_to_the_one_over_w():
    logits = torch.randn(1, VOCAB)
    c = TrieConstraint(LA_TRIE, END, lookahead_queries=[[20, 21]], separator_id=SEP)
    out = c(torch.tensor([[10, SEP]]), logits, torch.tensor([0]))
    p = logits[0].softmax(-1)
    expected = torch.stack((p[20] ** (1 / 3), p[30]))
    torch.testing.assert_close(out.softmax(-1)[0, [20, 30]], expected / expected.sum())


@pytest.mark.parametrize("strategy,beams", [("greedy", 1), ("beam", 3)])
def test_kgclue_style_keys_with_separators_inside_and_lookahead(strategy, beams):
    """Keys ``S [SEP] P [SEP] M`` with the end token as separator: min_ends = 3 closes after the whole key."""
    keys = [[10, END, 20, END, 30], [10, END, 20, END], [10, END, 21, END, 31, 32], [11, 12, END, 20, END, 33]]
    trie = TokenTrie.build(keys, ["o1", "o2", "o3", "o4"])
    questions = [[10, 21, 31], [11, 20, 33], [5, 6]]
    constraint = TrieConstraint(trie, END, lookahead_queries=questions)
    out = generate(MODEL, sources((6, 5, 3), seed=4), strategy=strategy, num_beams=beams, end_token_id=END,
                   min_ends=3, max_new_tokens=trie.max_length + 1, logits_processor=constraint)
    for row in out.tolist():
        seq = row[0]
        assert seq[-1] == END and seq[:-1] in keys and trie.get(seq[:-1]) is not None
    assert out.finished.all()
