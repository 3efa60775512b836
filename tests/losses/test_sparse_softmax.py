"""Sparse softmax (spec arch §12): hand values, equality with full CE at k >= V, gradient support."""

import math

import pytest
import torch
import torch.nn.functional as F

from kexue.errors import ConfigError
from kexue.losses.sparse_softmax import SparseSoftmaxCrossEntropy, sparse_softmax, sparse_softmax_cross_entropy


def test_spec_hand_value():
    x = torch.tensor([[3.0, 1.0, 0.5, -2.0]])
    t = torch.tensor([1])
    # log(e^3 + e^1) - 1, by hand: 3 + log(1 + e^-2) - 1
    assert sparse_softmax_cross_entropy(x, t, 2).item() == pytest.approx(2.1269280, abs=1e-6)
    assert sparse_softmax_cross_entropy(x, t, 4).item() == pytest.approx(2.2022534, abs=1e-6)
    assert 3 + math.log(1 + math.exp(-2)) - 1 == pytest.approx(2.1269280, abs=1e-6)


def test_equals_full_cross_entropy_when_k_at_least_vocab():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 11, generator=g)
    t = torch.randint(0, 11, (7,), generator=g)
    t[2] = -100
    for k in (11, 50):
        for include in (False, True):
            ours = sparse_softmax_cross_entropy(x, t, k, include_target=include)
            torch.testing.assert_close(ours, F.cross_entropy(x, t, ignore_index=-100), rtol=0, atol=1e-6)
    torch.testing.assert_close(sparse_softmax(x, 11), torch.softmax(x, -1), rtol=0, atol=1e-7)


def test_probabilities_have_k_nonzeros_summing_to_one():
    x = torch.randn(5, 20, generator=torch.Generator().manual_seed(1))
    p = sparse_softmax(x, 3)
    assert ((p > 0).sum(-1) == 3).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(5))
    top = x.topk(3, dim=-1).indices
    assert (p.gather(-1, top) > 0).all()


def _grad(x, t, k, include):
    x = x.clone().requires_grad_(True)
    sparse_softmax_cross_entropy(x, t, k, include_target=include, reduction="sum").backward()
    return x.grad


def test_gradient_zero_outside_topk_and_target():
    x = torch.tensor([[5.0, 4.0, 3.0, -1.0, -2.0, 0.0]])
    t = torch.tensor([4])  # outside the top-2 {0, 1}
    g = _grad(x, t, 2, include=False)
    # the article's form: d/dx_i = softmax over {0, 1}, and -1 at the target (the -x_t term)
    p0, p1 = math.exp(5) / (math.exp(5) + math.exp(4)), math.exp(4) / (math.exp(5) + math.exp(4))
    torch.testing.assert_close(g, torch.tensor([[p0, p1, 0.0, 0.0, -1.0, 0.0]]), rtol=0, atol=1e-6)
    g = _grad(x, t, 2, include=True)
    z = math.exp(5) + math.exp(4) + math.exp(-2)
    expected = torch.tensor([[math.exp(5) / z, math.exp(4) / z, 0.0, 0.0, math.exp(-2) / z - 1.0, 0.0]])
    torch.testing.assert_close(g, expected, rtol=0, atol=1e-6)


def test_gradient_support_random_rows():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(16, 30, generator=g)
    t = torch.randint(0, 30, (16,), generator=g)
    for include in (False, True):
        grad = _grad(x, t, 10, include)
        support = torch.zeros_like(x, dtype=torch.bool).scatter_(-1, x.topk(10, -1).indices, True)
        support.scatter_(-1, t[:, None], True)
        assert (grad[~support] == 0).all()
        assert (grad[support] != 0).any()


def test_include_target_makes_loss_nonnegative_and_article_form_positive_outside():
    x = torch.tensor([[2.0, 1.0, -3.0]])
    t = torch.tensor([2])
    article = sparse_softmax_cross_entropy(x, t, 1).item()
    assert article == pytest.approx(2.0 - -3.0)
    included = sparse_softmax_cross_entropy(x, t, 1, include_target=True).item()
    assert included == pytest.approx(math.log(math.exp(2) + math.exp(-3)) + 3)


def test_ignore_index_and_reductions():
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([1, -100, 3, -100])
    per = sparse_softmax_cross_entropy(x, t, 3, reduction="none")
    assert per[1] == 0 and per[3] == 0
    torch.testing.assert_close(sparse_softmax_cross_entropy(x, t, 3), per.sum() / 2)
    assert sparse_softmax_cross_entropy(x, torch.full((4,), -100), 3).item() == 0.0
    module = SparseSoftmaxCrossEntropy(k=3)
    torch.testing.assert_close(module(x, t), per.sum() / 2)


def test_bad_arguments():
    x = torch.zeros(2, 3)
    with pytest.raises(ConfigError, match="--sparse-k"):
        sparse_softmax_cross_entropy(x, torch.tensor([0, 1]), 0)
    with pytest.raises(ConfigError, match="reduction"):
        sparse_softmax_cross_entropy(x, torch.tensor([0, 1]), 2, reduction="avg")
    with pytest.raises(ConfigError, match="shape"):
        sparse_softmax_cross_entropy(x, torch.tensor([0]), 2)


def test_decoding_form_equals_softmax_after_top_k_filter():
    # at decoding, sparse softmax is the softmax of kexue.generation's top-k filter (SPACES keeps the top-10 logits)
    from kexue.generation.sampling import top_k_filter

    x = torch.randn(6, 25, generator=torch.Generator().manual_seed(4))
    for k in (1, 10, 25):
        torch.testing.assert_close(sparse_softmax(x, k), torch.softmax(top_k_filter(x, k), -1), rtol=0, atol=1e-7)
