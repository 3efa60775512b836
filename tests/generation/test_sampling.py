"""Top-k / top-p filters and the sampler (spec §14.4's top-p example)."""

from __future__ import annotations

import math

import pytest
import torch

from kexue.errors import ConfigError
from kexue.generation.sampling import sample_tokens, top_k_filter, top_p_filter


def test_spec_top_p_example_samples_only_zero_and_one():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]])).expand(4000, 3)
    draws = sample_tokens(logits, top_p=0.6, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(draws, minlength=3)
    assert counts[2] == 0 and counts[0] > 0 and counts[1] > 0
    # renormalised over {0, 1}: 0.5 / 0.8 = 0.625; 4000 draws have a standard error of about 0.008
    assert abs(counts[0].item() / 4000 - 0.625) < 0.03


def test_top_p_keeps_the_token_that_crosses_p():
    logits = torch.log(torch.tensor([[0.2, 0.5, 0.3]]))
    kept = torch.isfinite(top_p_filter(logits, 0.5))
    assert kept.tolist() == [[False, True, False]]  # 0.5 reaches p = 0.5 alone
    kept = torch.isfinite(top_p_filter(logits, 0.51))
    assert kept.tolist() == [[False, True, True]]
    assert torch.isfinite(top_p_filter(logits, 1.0)).all()


def test_top_k_filter():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0], [0.0, -1.0, 5.0, 2.0]])
    out = top_k_filter(logits, 2)
    assert torch.isfinite(out).tolist() == [[False, True, True, False], [False, False, True, True]]
    assert torch.equal(top_k_filter(logits, 10), logits)


def test_temperature_sharpens_the_distribution():
    logits = torch.log(torch.tensor([[0.6, 0.4]])).expand(4000, 2)
    draws = sample_tokens(logits, temperature=0.5, generator=torch.Generator().manual_seed(1))
    # p^(1/T) renormalised: 0.36 / (0.36 + 0.16) = 0.6923
    assert abs((draws == 0).float().mean().item() - 0.36 / 0.52) < 0.03


@pytest.mark.parametrize("kwargs", [{"top_k": 0}, {"top_p": 0.0}, {"top_p": 1.2}, {"temperature": -1.0}])
def test_invalid_values(kwargs):
    with pytest.raises(ConfigError):
        sample_tokens(torch.zeros(1, 3), **kwargs)


def test_minus_infinity_is_never_drawn():
    logits = torch.tensor([[0.0, -math.inf, 0.0, -math.inf]]).expand(500, 4)
    draws = sample_tokens(logits, generator=torch.Generator().manual_seed(2))
    assert set(draws.tolist()) <= {0, 2}
