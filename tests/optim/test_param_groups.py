"""Learning-rate multipliers by name pattern (spec training.md §10) and layer-wise lr decay."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertModel

from kexue.errors import ConfigError
from kexue.optim import layerwise_lr, layerwise_lr_decay_groups, lr_multiplier_groups, name_matches


class _Crf(nn.Module):
    def __init__(self, num_tags: int = 4):
        super().__init__()
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))


class _Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(8, 8)
        self.emission = nn.Linear(8, 4)
        self.crf = _Crf()


def _lr_of(groups, param):
    hits = [g["lr"] for g in groups for p in g["params"] if p is param]
    assert len(hits) == 1
    return hits[0]


def test_crf_multiplier_puts_only_the_transitions_at_100x():
    model = _Tagger()
    groups = layerwise_lr(model, {"crf": 100.0}, base_lr=1e-5)
    assert _lr_of(groups, model.crf.transitions) == pytest.approx(1e-3, rel=1e-12)
    for name, p in model.named_parameters():
        if name != "crf.transitions":
            assert _lr_of(groups, p) == 1e-5
    opt = torch.optim.Adam(groups)  # usable by torch.optim as is
    assert len(opt.param_groups) == 2


def test_pattern_kinds():
    assert name_matches("head.crf.transitions", "crf")
    assert not name_matches("crf_like.weight", "crf")
    assert not name_matches("encoder.layer.11.output.dense.weight", "encoder.layer.1")
    assert name_matches("encoder.layer.11.output.dense.weight", "encoder.layer.1*")
    assert name_matches("encoder.layer.3.attention.self.query.bias", "re:attention\\.self\\.(query|key)")
    with pytest.raises(ConfigError):
        lr_multiplier_groups(_Tagger(), 1e-3, {"crff": 10.0})
    with pytest.raises(ConfigError):
        lr_multiplier_groups(_Tagger(), 1e-3, {"crf": 0.0})


def test_reparameterisation_equivalence_adam_lambda_sgd_lambda_squared():
    """bert4keras stores φ = S/λ: Adam (ε=0) on φ ≡ Adam on S with lr·λ; SGD ≡ lr·λ²."""
    lam, lr = 10.0, 1e-3
    target = torch.randn(4, 4, dtype=torch.float64)
    for opt_cls, factor in ((torch.optim.Adam, lam), (torch.optim.SGD, lam ** 2)):
        s0 = torch.randn(4, 4, dtype=torch.float64)
        phi = nn.Parameter(s0 / lam)
        s = nn.Parameter(s0.clone())
        kw = {"eps": 0.0} if opt_cls is torch.optim.Adam else {}
        opt_phi = opt_cls([phi], lr=lr, **kw)
        holder = nn.Module()
        holder.crf = _Crf()
        holder.crf.transitions = s
        opt_s = opt_cls(lr_multiplier_groups(holder, lr, {"crf": factor}), **kw)
        for _ in range(50):
            for p, opt, scale in ((phi, opt_phi, lam), (s, opt_s, 1.0)):
                opt.zero_grad()
                (((scale * p) - target) ** 4).sum().backward()
                opt.step()
        assert (lam * phi.detach() - s.detach()).abs().max().item() < 1e-10


def test_layerwise_decay_on_bert():
    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=3, num_attention_heads=2,
                        intermediate_size=16)
    model = BertModel(config)
    groups = layerwise_lr_decay_groups(model, base_lr=1.0, decay=0.5, num_layers=3,
                                       weight_decay=0.01, no_decay=("bias", "LayerNorm.weight"))
    lr = {n: g["lr"] for g in groups for n in g["param_names"]}
    wd = {n: g["weight_decay"] for g in groups for n in g["param_names"]}
    assert lr["embeddings.word_embeddings.weight"] == 0.5 ** 4
    assert lr["encoder.layer.0.attention.self.query.weight"] == 0.5 ** 3
    assert lr["encoder.layer.2.output.dense.weight"] == 0.5
    assert lr["pooler.dense.weight"] == 1.0
    assert wd["encoder.layer.0.attention.self.query.bias"] == 0.0
    assert wd["encoder.layer.0.attention.self.query.weight"] == 0.01
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    with pytest.raises(ConfigError):
        layerwise_lr_decay_groups(model, 1.0, 0.5, num_layers=2)
