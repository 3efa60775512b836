"""RealFormer residual scores (https://kexue.fm/archives/8027) and the entropy-invariant scale
(https://kexue.fm/archives/8823), through the attention module and the whole Transformer."""

from __future__ import annotations

import math

import torch

from kexue.models import Transformer, TransformerConfig
from kexue.nn.attention import MultiHeadAttention, entropy_invariant_factor


def _config(**kw) -> TransformerConfig:
    base = dict(vocab_size=60, hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=20,
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, max_position_embeddings=32)
    base.update(kw)
    return TransformerConfig(**base)


def _own_scores(layer, x: torch.Tensor, config: TransformerConfig) -> torch.Tensor:
    """q·k^T/√d of ``layer`` on its input ``x`` [B, L, H], from the fused weights (BERT family: no RoPE)."""
    b, length, h = x.shape
    w, bias = layer.attention.qkv.weight, layer.attention.qkv.bias
    q = (x @ w[:h].T + bias[:h]).view(b, length, config.num_attention_heads, -1).transpose(1, 2)
    k = (x @ w[h:2 * h].T + bias[h:2 * h]).view(b, length, config.num_attention_heads, -1).transpose(1, 2)
    return q @ k.transpose(-1, -2) / math.sqrt(config.head_size)


def test_realformer_scores_accumulate_across_layers():
    cfg = _config(residual_attention=True)
    model = Transformer(cfg).eval()
    ids = torch.randint(1, 60, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    with torch.no_grad():
        out = model(ids, mask, output_hidden_states=True, output_attention_scores=True)
        assert out.attention_scores[0].shape == (2, 2, 7, 7)
        assert torch.allclose(out.attention_scores[0], _own_scores(model.layers[0], out.hidden_states[0], cfg),
                              atol=1e-5)
        for layer in (1, 2):
            own = _own_scores(model.layers[layer], out.hidden_states[layer], cfg)
            assert torch.allclose(out.attention_scores[layer], own + out.attention_scores[layer - 1], atol=1e-5)


def test_realformer_first_layer_equals_baseline_and_differs_later():
    torch.manual_seed(4)
    base = Transformer(_config()).eval()
    real = Transformer(_config(residual_attention=True)).eval()
    with torch.no_grad():  # sharpen attention so that the carried scores matter
        for layer in base.layers:
            layer.attention.qkv.weight.mul_(20.0)
    real.load_state_dict(base.state_dict())
    ids = torch.randint(1, 60, (2, 6))
    with torch.no_grad():
        a = base(ids, output_hidden_states=True)
        b = real(ids, output_hidden_states=True)
    assert torch.allclose(a.hidden_states[1], b.hidden_states[1], atol=1e-6)
    assert (a.last_hidden_state - b.last_hidden_state).abs().max() > 1e-2


def test_entropy_invariant_factor_formula():
    for n, expected in [(64, 2 / 3), (512, 1.0), (1024, 10 / 9), (8, 1 / 3), (1, 0.0)]:
        assert abs(entropy_invariant_factor(float(n)) - expected) < 1e-12
    t = entropy_invariant_factor(torch.tensor([64.0, 128.0, 4096.0]))
    assert torch.allclose(t, torch.tensor([6 / 9, 7 / 9, 12 / 9]))


def _manual_attention(att: MultiHeadAttention, x, key_mask, scale_of_n):
    """softmax(scale(n_row) · QK^T + mask) V with n_row = number of real keys, written out directly."""
    b, length, h = x.shape
    qkv = att.qkv(x).view(b, length, 3, att.num_heads, att.head_size).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    n = key_mask.sum(-1).float()[:, None, None, None]
    scores = scale_of_n(n) * (q @ k.transpose(-1, -2))
    scores = scores.masked_fill(~key_mask.bool()[:, None, None, :], float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, length, h)
    return att.output(out)


def test_entropy_invariant_scale_for_several_lengths():
    torch.manual_seed(5)
    cfg = _config(num_hidden_layers=1, attention_scale="entropy_invariant", attention_train_length=8)
    model = Transformer(cfg).eval()
    d = cfg.head_size
    for length in (3, 8, 20):
        ids = torch.randint(1, 60, (2, length))
        mask = torch.ones(2, length, dtype=torch.long)
        mask[1, max(1, length - 2):] = 0
        with torch.no_grad():
            out = model(ids, mask, output_hidden_states=True)
            x = out.hidden_states[0]
            att = _manual_attention(model.layers[0].attention, x, mask, lambda n: torch.log(n) / math.log(8) / d ** 0.5)
            layer = model.layers[0]
            y = layer.attention_norm(x + att)
            y = layer.output_norm(y + layer.output(layer.act(layer.intermediate(y))))
        real = mask.bool()
        assert (out.last_hidden_state - y)[real].abs().max() < 1e-5


def test_entropy_scale_at_train_length_equals_standard():
    torch.manual_seed(6)
    std = Transformer(_config(num_hidden_layers=1)).eval()
    ent = Transformer(_config(num_hidden_layers=1, attention_scale="entropy_invariant", attention_train_length=9))
    ent.load_state_dict(std.state_dict())
    ids = torch.randint(1, 60, (2, 9))
    with torch.no_grad():
        assert torch.allclose(std(ids).last_hidden_state, ent.eval()(ids).last_hidden_state, atol=1e-6)


def test_sdpa_path_equals_explicit_path():
    torch.manual_seed(7)
    att = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 5, 16)
    bias = torch.zeros(2, 1, 1, 5)
    bias[1, ..., 3:] = torch.finfo(torch.float32).min
    with torch.no_grad():
        fast, none = att(x, bias)
        slow, scores = att(x, bias, need_scores=True)
    assert none is None and scores.shape == (2, 4, 5, 5)
    assert torch.allclose(fast, slow, atol=1e-6)
