"""Attention masks: the UniLM 6x6 example of spec §14.5, causal and padding masks, finfo.min biases."""

from __future__ import annotations

import pytest
import torch

from kexue.errors import ConfigError
from kexue.nn.masks import build_attention_mask, causal_mask, mask_to_bias, unilm_mask


def test_unilm_mask_spec_example():
    m = unilm_mask(torch.tensor([[0, 0, 0, 1, 1, 1]]))[0, 0].int()
    expected = torch.tensor([
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 1],
    ])
    assert torch.equal(m, expected)


def test_causal_mask_is_lower_triangular():
    m = causal_mask(4)[0, 0].int()
    assert torch.equal(m, torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]))


def test_padding_combines_and_bias_uses_finfo_min():
    am = torch.tensor([[1, 1, 1, 0]])
    m = build_attention_mask("causal", am, None, 4)
    assert m.shape == (1, 1, 4, 4)
    assert not m[0, 0, 3, 3] and m[0, 0, 3, 2]
    bias = mask_to_bias(m, torch.float16)
    assert bias.dtype == torch.float16 and bias[0, 0, 0, 1] == torch.finfo(torch.float16).min
    assert bias[0, 0, 1, 0] == 0
    assert build_attention_mask("bidirectional", torch.ones(2, 4), None, 4) is None


def test_bad_kinds_raise():
    with pytest.raises(ConfigError, match="unilm"):
        build_attention_mask("unilm", None, None, 3)
    with pytest.raises(ConfigError, match="prefix"):
        build_attention_mask("prefix", None, None, 3)
