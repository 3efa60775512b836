"""CRF learning-rate article (https://kexue.fm/archives/7196), training spec §10 tests 3-4: the legality predicate
on the article's two matrices and the synthetic BMES experiment (λ = 1000 vs 1, seeded)."""

from __future__ import annotations

import pytest
import torch

from kexue.analysis.crf_legality import (ARTICLE_AFTER, ARTICLE_BEFORE, bmes_crf_experiment, bmes_legal_transitions,
                                         is_legal, row_legality, synthetic_bmes)
from kexue.errors import ConfigError


def test_legal_mask_by_hand():
    # rows/columns s, b, m, e: s->{s,b}, b->{m,e}, m->{m,e}, e->{s,b}
    want = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    assert torch.equal(bmes_legal_transitions(), want)
    # another tag order permutes rows and columns alike
    perm = bmes_legal_transitions(("b", "m", "e", "s"))
    assert torch.equal(perm, want[[1, 2, 3, 0]][:, [1, 2, 3, 0]])
    with pytest.raises(ConfigError, match="--tags"):
        bmes_legal_transitions(("s", "b", "i", "e"))


def test_article_matrices():
    legal = bmes_legal_transitions()
    after = torch.tensor(ARTICLE_AFTER)
    before = torch.tensor(ARTICLE_BEFORE)
    assert row_legality(after, legal).tolist() == [True, True, True, True]
    assert is_legal(after, legal)
    # before: row s has S[s->e] = 0.707 > S[s->b] = -0.459; row m has S[m->s] = 0.196 > S[m->m] = -0.794
    assert row_legality(before, legal).tolist() == [False, True, False, True]
    assert not is_legal(before, legal)


def test_predicate_boundary_is_strict():
    legal = bmes_legal_transitions()
    t = torch.where(legal, torch.tensor(1.0), torch.tensor(0.0))
    assert is_legal(t, legal)
    t[0, 2] = 1.0  # an illegal transition tied with the legal ones
    assert row_legality(t, legal).tolist() == [False, True, True, True]


def test_synthetic_data_is_legal_bmes():
    emissions, tags = synthetic_bmes(20, 15, torch.Generator().manual_seed(0))
    legal = bmes_legal_transitions()
    assert emissions.shape == (20, 15, 4)
    for row in tags.tolist():
        assert row[0] in (0, 1) and row[-1] in (0, 3)  # starts a word, ends a word
        assert all(legal[a, b] for a, b in zip(row, row[1:]))


@pytest.mark.parametrize("seed", [0, 1])
def test_large_crf_multiplier_learns_a_legal_matrix_and_small_does_not(seed):
    slow = bmes_crf_experiment(1.0, seed=seed)
    fast = bmes_crf_experiment(1000.0, seed=seed)
    assert fast.legal, fast.transitions
    assert not slow.legal, slow.transitions
    assert fast.loss < slow.loss
