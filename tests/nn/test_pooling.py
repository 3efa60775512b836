"""Pooling modes P1-P4 of spec §0 (https://kexue.fm/archives/8847)."""

from __future__ import annotations

import warnings

import pytest
import torch
from transformers import BertConfig, BertModel

from kexue.errors import ConfigError
from kexue.models.outputs import TransformerOutput
from kexue.nn.pooling import POOLING_MODES, Pooling, masked_mean, pool

MASK = torch.tensor([[1, 1, 0], [1, 1, 1]])


def _output(num_layers: int = 2) -> TransformerOutput:
    g = torch.Generator().manual_seed(0)
    states = tuple(torch.randn(2, 3, 4, generator=g) for _ in range(num_layers + 1))
    return TransformerOutput(last_hidden_state=states[-1], hidden_states=states,
                             pooler_output=torch.randn(2, 4, generator=g))


def test_modes_constant():
    assert POOLING_MODES == ("cls", "pooler", "last-avg", "first-last-avg")


def test_cls_and_pooler_output():
    out = _output()
    assert torch.equal(pool(out, MASK, "cls"), out.last_hidden_state[:, 0])
    assert torch.equal(pool(out, MASK, "pooler"), out.pooler_output)


def test_last_avg_by_hand():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]],
                      [[0.0, 0.0], [3.0, 3.0], [6.0, -3.0]]])
    out = TransformerOutput(last_hidden_state=h)
    expected = torch.tensor([[2.0, 3.0], [3.0, 0.0]])      # row 0 ignores the padded 100s
    assert torch.equal(pool(out, MASK, "last-avg"), expected)


def test_first_last_avg_uses_first_block_not_embeddings():
    out = _output(num_layers=3)
    h = out.hidden_states
    mean = lambda x: (x * MASK[..., None]).sum(1) / MASK.sum(1, keepdim=True)  # noqa: E731
    expected = (mean(h[1]) + mean(h[3])) / 2
    got = pool(out, MASK, "first-last-avg")
    assert torch.allclose(got, expected, atol=1e-6)
    wrong = (mean(h[0]) + mean(h[3])) / 2                  # the pitfall: embedding output
    assert not torch.allclose(got, wrong, atol=1e-3)
    changed = TransformerOutput(out.last_hidden_state, (h[0] + 10.0, *h[1:]), out.pooler_output)
    assert torch.equal(pool(changed, MASK, "first-last-avg"), got)


def test_parity_with_transformers_bert_and_sentence_transformers_mean():
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=32)).eval()
    ids = torch.randint(1, 50, (3, 7))
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        assert torch.equal(pool(out, mask, "cls"), out.last_hidden_state[:, 0])
        # P2 is the pooler Dense without tanh; HF's pooler_output is tanh of it
        linear = pool(out, mask, "pooler", pooler_dense=model.pooler.dense)
        assert torch.allclose(torch.tanh(linear), out.pooler_output, atol=1e-6)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from sentence_transformers.sentence_transformer.modules import Pooling as STPooling
        st_mean = STPooling(16, pooling_mode="mean")(
            {"token_embeddings": out.last_hidden_state, "attention_mask": mask})["sentence_embedding"]
        assert torch.allclose(pool(out, mask, "last-avg"), st_mean, atol=1e-6)
        assert len(out.hidden_states) == 3                 # embeddings + 2 blocks
        first_last = pool(out, mask, "first-last-avg")
        assert torch.allclose(first_last, (masked_mean(out.hidden_states[1], mask) + st_mean) / 2, atol=1e-6)


def test_masked_mean_half_precision_does_not_overflow():
    h = torch.full((1, 200, 2), 1000.0, dtype=torch.float16)   # fp16 sum would be 2e5 > 65504
    out = masked_mean(h, torch.ones(1, 200))
    assert out.dtype == torch.float16 and torch.equal(out, torch.full((1, 2), 1000.0, dtype=torch.float16))


def test_module():
    dense = torch.nn.Linear(4, 4)
    module = Pooling("pooler", pooler_dense=dense)
    assert any(p is dense.weight for p in module.parameters())
    out = _output()
    assert torch.equal(module(out, MASK), dense(out.last_hidden_state[:, 0]))
    assert Pooling("first-last-avg").needs_hidden_states and not Pooling("cls").needs_hidden_states
    assert "last-avg" in repr(Pooling("last-avg"))


def test_errors():
    out = _output()
    with pytest.raises(ConfigError, match="expected one of cls, pooler, last-avg, first-last-avg"):
        pool(out, MASK, "mean")
    with pytest.raises(ConfigError, match="pooling"):
        Pooling("max")
    with pytest.raises(ConfigError, match="no pooler_output"):
        pool(TransformerOutput(out.last_hidden_state), MASK, "pooler")
    with pytest.raises(ConfigError, match="output_hidden_states=True"):
        pool(TransformerOutput(out.last_hidden_state), MASK, "first-last-avg")
    with pytest.raises(ConfigError, match="at least one block"):
        pool(TransformerOutput(out.last_hidden_state, hidden_states=(out.last_hidden_state,)), MASK,
             "first-last-avg")
    with pytest.raises(ValueError, match="no real token"):
        pool(out, torch.tensor([[1, 1, 0], [0, 0, 0]]), "last-avg")
    with pytest.raises(ValueError, match="shape"):
        pool(out, torch.ones(2, 5), "last-avg")
