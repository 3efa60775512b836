"""FNet and gMLP token mixing (https://kexue.fm/archives/8431) and their use in the Transformer's attention slot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kexue.errors import ConfigError
from kexue.models import Transformer
from kexue.models.config import TransformerConfig
from kexue.nn.mixers import FNetMixing, SpatialGatingUnit


def _dft(n):
    k = np.arange(n)
    return np.exp(-2j * np.pi * np.outer(k, k) / n)


def test_fnet_equals_real_part_of_the_2d_dft():
    x = torch.randn(2, 7, 6, dtype=torch.float64)
    out = FNetMixing()(x)
    # independent: the DFT matrices over positions and hidden, Re(F_L X F_H), in numpy
    for b in range(2):
        want = (_dft(7) @ x[b].numpy() @ _dft(6)).real
        np.testing.assert_allclose(out[b].numpy(), want, atol=1e-10)
    assert out.dtype == x.dtype
    half = FNetMixing()(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16


def test_spatial_gating_identities():
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    x1, x2 = x[..., :4], x[..., 4:]
    for norm in (True, False):
        sgu = SpatialGatingUnit(10, 4, norm=norm).double()
        with torch.no_grad():
            sgu.weight.zero_()
            sgu.bias.fill_(1.0)
        assert torch.equal(sgu(x), x1)  # W = 0, b = 1 returns X1
    sgu = SpatialGatingUnit(10, 4, norm=False).double()
    with torch.no_grad():
        sgu.weight.copy_(torch.eye(10, dtype=torch.float64))
        sgu.bias.zero_()
    assert torch.allclose(sgu(x), x1 * x2)  # W = I, b = 0: X1 ⊙ X2
    with torch.no_grad():  # W = the shift matrix: position i gates with X2 of position i-1
        sgu.weight.copy_(torch.diag(torch.ones(9, dtype=torch.float64), -1))
    want = x1 * torch.cat([torch.zeros(3, 1, 4, dtype=torch.float64), x2[:, :-1]], dim=1)
    assert torch.allclose(sgu(x), want)
    with pytest.raises(ConfigError, match="seq_len"):
        SpatialGatingUnit(4, 4)(x)


def _config(**kw):
    base = dict(vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32,
                max_position_embeddings=20, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    base.update(kw)
    return TransformerConfig(**base)


def test_all_attention_token_mixing_is_the_default_model_exactly():
    torch.manual_seed(0)
    default = Transformer(_config()).eval()
    explicit = Transformer(_config(token_mixing=["attention"] * 3)).eval()
    explicit.load_state_dict(default.state_dict())
    ids = torch.randint(1, 50, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    a = default(ids, attention_mask=mask).last_hidden_state
    b = explicit(ids, attention_mask=mask).last_hidden_state
    assert torch.equal(a, b)
    assert "token_mixing" not in default.config.to_hf_config()["kexue"]


def test_mixer_layers_replace_attention_and_keep_padding_out():
    torch.manual_seed(0)
    model = Transformer(_config(token_mixing=["fnet", "attention", "gmlp"], token_mixing_seq_len=12)).eval()
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.startswith("layers.0.attention.") for n in names)  # FNet: no parameters
    assert "layers.1.attention.qkv.weight" in names and "layers.2.attention.sgu.weight" in names
    ids = torch.randint(1, 50, (1, 7))
    out = model(ids).last_hidden_state
    assert out.shape == (1, 7, 16) and torch.isfinite(out).all()
    # gMLP + attention layers: real tokens do not see padding (FNet would: it transforms over the padded length)
    gm = Transformer(_config(token_mixing=["gmlp", "attention", "gmlp"], token_mixing_seq_len=12)).eval()
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 7 + [0] * 3])
    short = gm(ids).last_hidden_state
    long = gm(padded, attention_mask=mask).last_hidden_state[:, :7]
    assert torch.allclose(short, long, atol=1e-5)
    # the training path (dropout off) gives the same values as the fused eval path
    gm.train()
    assert torch.allclose(gm(ids).last_hidden_state, short, atol=1e-5)


def test_token_mixing_validation_and_round_trip(tmp_path):
    with pytest.raises(ConfigError, match="token_mixing"):
        _config(token_mixing=["fnet", "attention"])  # 2 entries for 3 layers
    with pytest.raises(ConfigError, match="token_mixing"):
        _config(token_mixing=["conv", "attention", "attention"])
    with pytest.raises(ConfigError, match="token_mixing"):
        _config(token_mixing=["fnet", "attention", "attention"], attention_mask_kind="causal")
    cfg = _config(token_mixing=["fnet", "attention", "gmlp"], token_mixing_seq_len=12)
    back = TransformerConfig.from_hf_config(cfg.to_hf_config())
    assert back.token_mixing == ["fnet", "attention", "gmlp"] and back.token_mixing_seq_len == 12


def test_save_and_load_a_mixed_model(tmp_path):
    torch.manual_seed(0)
    cfg = _config(token_mixing=["fnet", "attention", "gmlp"], token_mixing_seq_len=12)
    model = Transformer(cfg).eval()
    model.save_pretrained(tmp_path / "mixed")
    back = Transformer.from_pretrained(tmp_path / "mixed")
    ids = torch.randint(1, 50, (2, 7))
    assert torch.equal(model(ids).last_hidden_state, back(ids).last_hidden_state)
