"""FGM on the embedding matrix (spec training.md §4, https://kexue.fm/archives/7234)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from kexue.errors import ConfigError
from kexue.regularizers import FGM, gradient_penalty

DT = torch.float64


@pytest.mark.parametrize("y", [1.0, -1.0])
def test_logistic_regression_closed_form(y):
    """Normalised FGM on x for L = softplus(-y wᵀx) gives softplus(-y wᵀx + ε‖w‖)."""
    gen = torch.Generator().manual_seed(int(y > 0))
    d, eps = 5, 0.7
    w = torch.randn(d, generator=gen, dtype=DT)
    emb = nn.Embedding(1, d, dtype=DT)
    with torch.no_grad():
        emb.weight.copy_(torch.randn(1, d, generator=gen, dtype=DT))
    x = emb.weight.detach()[0].clone()
    ids = torch.zeros(1, dtype=torch.long)

    def loss():
        return nn.functional.softplus(-y * (emb(ids)[0] @ w))

    fgm = FGM(emb, epsilon=eps, norm_eps=0.0)
    with fgm.perturbed(loss()):
        adv = loss().item()
    expected = nn.functional.softplus(torch.tensor(-y * (w @ x).item() + eps * w.norm().item(), dtype=DT)).item()
    assert abs(adv - expected) < 1e-12
    assert torch.equal(emb.weight.detach()[0], x)


class _Bag(nn.Module):
    def __init__(self, vocab=20, d=6):
        super().__init__()
        self.word = nn.Embedding(vocab, d, dtype=DT)
        self.mlp = nn.Sequential(nn.Linear(d, 8, dtype=DT), nn.Tanh(), nn.Linear(8, 3, dtype=DT))

    def get_input_embeddings(self):
        return self.word

    def forward(self, ids):
        return self.mlp(self.word(ids).mean(1))


def _batch():
    gen = torch.Generator().manual_seed(4)
    ids = torch.tensor([[1, 2, 2, 5], [5, 7, 1, 1]])
    return ids, torch.randint(0, 3, (2,), generator=gen)


def _loss(model, ids, labels):
    return nn.functional.cross_entropy(model(ids), labels)


def test_matrix_mode_norm_sparsity_and_exact_restore_after_step():
    model = _Bag()
    ids, labels = _batch()
    e0 = model.word.weight.detach().clone()
    fgm = FGM(model, epsilon=0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with fgm.perturbed(_loss(model, ids, labels)) as delta:
        assert abs(torch.linalg.vector_norm(delta).item() - 0.5) < 1e-6
        absent = torch.ones(20, dtype=torch.bool)
        absent[ids.unique()] = False
        assert torch.equal(delta[absent], torch.zeros_like(delta[absent]))
        assert not torch.equal(model.word.weight.detach(), e0)
        _loss(model, ids, labels).backward()
    assert torch.equal(model.word.weight.detach(), e0)  # restored bit for bit
    grad = model.word.weight.grad.clone()
    opt.step()
    assert (model.word.weight.detach() - (e0 - 0.1 * grad)).abs().max().item() < 1e-12


def _grads(model):
    return [p.grad.clone() for p in model.parameters()]


def test_loss_modes_adv_only_and_clean_plus_adv():
    ids, labels = _batch()
    base = _Bag()
    # reference gradients: clean, and adversarial at E + δ computed by hand
    ref = copy.deepcopy(base)
    clean = torch.autograd.grad(_loss(ref, ids, labels), list(ref.parameters()))
    g_e = clean[0]
    delta = 0.3 * g_e / (g_e.norm() + 1e-8)
    with torch.no_grad():
        ref.word.weight.add_(delta)
    adv = torch.autograd.grad(_loss(ref, ids, labels), list(ref.parameters()))

    m1 = copy.deepcopy(base)
    with FGM(m1, epsilon=0.3, loss_mode="adv_only").perturbed(_loss(m1, ids, labels)):
        _loss(m1, ids, labels).backward()
    for got, want in zip(_grads(m1), adv):
        assert torch.allclose(got, want, rtol=0, atol=1e-12)

    m2 = copy.deepcopy(base)
    with FGM(m2, epsilon=0.3, loss_mode="clean_plus_adv").perturbed(_loss(m2, ids, labels)):
        _loss(m2, ids, labels).backward()
    for got, c, a in zip(_grads(m2), clean, adv):
        assert torch.allclose(got, c + a, rtol=0, atol=1e-12)


def test_plain_attack_restore_api_and_errors():
    model = _Bag()
    ids, labels = _batch()
    e0 = model.word.weight.detach().clone()
    fgm = FGM(model, epsilon=1.0, norm="sign")
    with pytest.raises(ConfigError):
        fgm.attack()  # no gradient yet
    _loss(model, ids, labels).backward()
    delta = fgm.attack()
    assert set(delta.abs().unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ConfigError):
        fgm.attack()
    fgm.restore()
    assert torch.equal(model.word.weight.detach(), e0)
    with pytest.raises(ConfigError):
        FGM(nn.Linear(2, 2))


def _theta_grad(model, loss):
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(model.mlp.parameters()))])


def test_fgm_gradient_penalty_gap_is_second_order():
    """‖∇θ L(E+δ) - ∇θ[L + ε‖∇_E L‖]‖ = O(ε²) (normalised FGM ⇔ norm penalty)."""
    ids, labels = _batch()
    base = _Bag()
    errors = []
    for eps in (1e-2, 5e-3, 2.5e-3, 1.25e-3):
        m = copy.deepcopy(base)
        with FGM(m, epsilon=eps).perturbed(_loss(m, ids, labels)):
            adv = _theta_grad(m, _loss(m, ids, labels))
        loss = _loss(m, ids, labels)
        gp = _theta_grad(m, loss + gradient_penalty(loss, m.word.weight, weight=eps, squared=False))
        errors.append((adv - gp).norm().item())
    ratios = [a / b for a, b in zip(errors, errors[1:])]
    assert all(abs(r - 4.0) < 0.5 for r in ratios), ratios


def test_raw_input_step_gap_is_second_order_on_mlp():
    """Δx = ε∇_xL (detached): ∇θ L(x+Δx) vs ∇θ[L + (ε/2)‖∇_xL‖²], ε from 1e-2 to 1e-4."""
    torch.manual_seed(3)
    mlp = nn.Sequential(nn.Linear(4, 16, dtype=DT), nn.Tanh(), nn.Linear(16, 1, dtype=DT))
    x = torch.randn(8, 4, dtype=DT, requires_grad=True)
    y = torch.randn(8, 1, dtype=DT)
    params = list(mlp.parameters())

    def loss_at(inp):
        return ((mlp(inp) - y) ** 2).mean()

    errors = []
    for eps in (1e-2, 5e-3, 2.5e-3, 1.25e-3, 1e-4 * 2, 1e-4):
        gx = torch.autograd.grad(loss_at(x), x)[0]
        adv = torch.autograd.grad(loss_at(x + eps * gx), params)
        loss = loss_at(x)
        gp = torch.autograd.grad(loss + gradient_penalty(loss, x, weight=eps / 2), params)
        errors.append(torch.cat([(a - b).reshape(-1) for a, b in zip(adv, gp)]).norm().item())
    ratios = [errors[i] / errors[i + 1] for i in (0, 1, 2, 4)]
    assert all(abs(r - 4.0) < 0.5 for r in ratios), ratios


def test_works_on_transformers_bert():
    config = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=2)
    model = BertForSequenceClassification(config)
    ids = torch.tensor([[2, 5, 7, 3], [2, 9, 9, 3]])
    labels = torch.tensor([0, 1])
    e0 = model.get_input_embeddings().weight.detach().clone()
    fgm = FGM(model, epsilon=0.5)
    with fgm.perturbed(model(input_ids=ids, labels=labels).loss):
        model(input_ids=ids, labels=labels).loss.backward()
    assert torch.equal(model.get_input_embeddings().weight.detach(), e0)
    assert model.classifier.weight.grad is not None and model.classifier.weight.grad.abs().sum() > 0
