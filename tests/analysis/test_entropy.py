"""Entropy normalization (https://kexue.fm/archives/8829): the spec's verifiable properties (arch §10)."""

from __future__ import annotations

import math

import pytest
import torch

from kexue.analysis.entropy import EntropyWarper, entropy, entropy_normalize, entropy_normalize_logits
from kexue.errors import ConfigError


def _brute_entropy(p):  # independent: plain Python over a list
    return -sum(x * math.log(x) for x in p if x > 0)


def test_entropy_matches_python_sum():
    p = torch.tensor([0.5, 0.25, 0.25, 0.0], dtype=torch.float64)
    assert entropy(p).item() == pytest.approx(1.5 * math.log(2), abs=1e-15)


def test_random_rows_reach_log30_within_5_iterations():
    g = torch.Generator().manual_seed(1)
    p = torch.rand(64, 100, generator=g, dtype=torch.float64)
    p = p / p.sum(-1, keepdim=True)
    target = math.log(30)
    out = entropy_normalize(p, target, n_iter=5)
    for row in out.tolist():
        assert abs(_brute_entropy(row) - target) < 1e-6
    # 4 iterations are already close (the article: 3-4 converge well), 1 iteration is not yet
    four = entropy(entropy_normalize(p, target, n_iter=4))
    one = entropy(entropy_normalize(p, target, n_iter=1))
    assert (four - target).abs().max() < 1e-4
    assert (one - target).abs().max() > (four - target).abs().max()


def test_softmax_of_gaussian_logits_rows_converge():
    g = torch.Generator().manual_seed(2)
    p = torch.softmax(2.0 * torch.randn(32, 100, generator=g, dtype=torch.float64), -1)
    out = entropy_normalize(p, math.log(30), n_iter=5)
    assert (entropy(out) - math.log(30)).abs().max() < 1e-6


def test_order_preserved_and_valid_distribution():
    g = torch.Generator().manual_seed(3)
    p = torch.rand(16, 100, generator=g, dtype=torch.float64)
    p = p / p.sum(-1, keepdim=True)
    order = torch.argsort(p, -1)
    for target in (0.5, math.log(30), 4.5):
        out = entropy_normalize(p, target, n_iter=6)
        if target > 1:
            assert torch.equal(torch.argsort(out, -1), order)
        # at H* = 0.5 the power is ~60 and the smallest entries underflow to 0: ties, never an inversion
        assert (out.gather(-1, order).diff(dim=-1) >= 0).all()
        assert (out >= 0).all()
        assert torch.allclose(out.sum(-1), torch.ones(16, dtype=torch.float64), atol=1e-12)


def test_near_uniform_and_near_one_hot_limits():
    g = torch.Generator().manual_seed(4)
    p = torch.softmax(torch.randn(8, 50, generator=g, dtype=torch.float64), -1)
    n = 50
    wide = entropy_normalize(p, math.log(n) - 1e-6, n_iter=30)
    assert (wide - 1.0 / n).abs().max() < 1e-3
    sharp = entropy_normalize(p, 1e-3, n_iter=30)
    assert (sharp.max(-1).values > 0.999).all()
    assert torch.equal(sharp.argmax(-1), p.argmax(-1))


def test_uniform_row_is_a_guarded_fixed_point_and_zeros_stay_zero():
    p = torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.5, 0.3, 0.2, 0.0]], dtype=torch.float64)
    out = entropy_normalize(p, torch.tensor([1.0, 0.8], dtype=torch.float64), n_iter=8)
    assert torch.isfinite(out).all()
    assert torch.equal(out[0], p[0])  # Var(log p) = 0: nothing to do, no division by zero
    assert out[1, 3].item() == 0.0
    assert entropy(out[1]).item() == pytest.approx(0.8, abs=1e-9)


def test_per_row_targets_and_other_dim():
    g = torch.Generator().manual_seed(5)
    p = torch.softmax(torch.randn(20, 3, generator=g, dtype=torch.float64), 0)  # distributions along dim 0
    targets = torch.tensor([1.0, 2.0, 2.5], dtype=torch.float64)
    out = entropy_normalize(p, targets, n_iter=6, dim=0)
    assert torch.allclose(entropy(out, dim=0), targets, atol=1e-9)


def test_errors_are_typed_and_name_the_flag():
    p = torch.tensor([0.5, 0.5, 0.0])
    with pytest.raises(ConfigError, match="--target-entropy"):
        entropy_normalize(p, math.log(3))  # only 2 non-zero entries: log 2 is the maximum
    with pytest.raises(ConfigError, match="--target-entropy"):
        entropy_normalize(p, -0.1)
    with pytest.raises(ConfigError, match="--entropy-iterations"):
        entropy_normalize(p, 0.5, n_iter=-1)
    with pytest.raises(ConfigError):
        entropy_normalize(torch.tensor([0.5, -0.5, 1.0]), 0.5)


def test_logits_warper_sets_entropy_and_keeps_banned_tokens():
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(4, 40, generator=g)
    logits[:, :5] = -math.inf
    warped = EntropyWarper(2.0, n_iter=6)(None, logits)
    assert warped.dtype == logits.dtype
    assert torch.isinf(warped[:, :5]).all()
    h = entropy(torch.softmax(warped.double(), -1))
    assert (h - 2.0).abs().max() < 1e-5  # float32 logits
    assert torch.equal(torch.argsort(warped[:, 5:], -1), torch.argsort(logits[:, 5:], -1))
    # a target above log(allowed tokens) gives the uniform distribution over the allowed ones
    flat = entropy_normalize_logits(logits.double(), 10.0)
    assert torch.allclose(torch.softmax(flat, -1)[:, 5:], torch.full((4, 35), 1 / 35, dtype=torch.float64))


def test_transformers_generate_uses_the_processor():
    from transformers import GPT2Config, GPT2LMHeadModel, LogitsProcessorList

    from kexue.analysis.entropy_processor import EntropyNormalizationLogitsProcessor

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2)).eval()
    proc = EntropyNormalizationLogitsProcessor(1.5, n_iter=6)
    out = model.generate(torch.tensor([[1, 2, 3]]), do_sample=True, max_new_tokens=5, top_k=0, top_p=1.0,
                         logits_processor=LogitsProcessorList([proc]), output_scores=True,
                         return_dict_in_generate=True, pad_token_id=0)
    assert len(out.scores) == 5
    for step in out.scores:
        assert abs(entropy(torch.softmax(step.double(), -1)).item() - 1.5) < 1e-5


def test_no_cycle_on_a_nearly_flat_row_with_a_few_larger_entries():
    # an add-one smoothed bigram row (counts 7, 2 and 57 ones): the plain Newton iteration overshoots to
    # near one-hot (H ~ 1e-3 nats) and back to near uniform (H ~ 4.07) forever; the bracketed one converges
    counts = torch.ones(59, dtype=torch.float64)
    counts[0], counts[1] = 7.0, 2.0
    p = counts / counts.sum()
    assert abs(entropy(entropy_normalize(p, 1.5, n_iter=4)).item() - 1.5) < 1e-5
    assert abs(entropy(entropy_normalize(p, 1.5, n_iter=8)).item() - 1.5) < 1e-12
