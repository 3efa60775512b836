"""Input- and parameter-gradient penalties (spec training.md §3, §4)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from kexue.errors import ConfigError
from kexue.regularizers import (
    capture_embedding_outputs,
    embedding_gradient_penalty,
    gradient_penalty,
    parameter_gradient_penalty,
)

DT = torch.float64


def _tiny_bert():
    config = BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, num_labels=3, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, attn_implementation="eager")
    return BertForSequenceClassification(config).to(DT)


_IDS = torch.tensor([[2, 5, 7, 7, 3], [2, 9, 4, 3, 0]])
_MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
_LABELS = torch.tensor([0, 2])


def _penalised(model, epsilon=1.0):
    with capture_embedding_outputs(model) as captured:
        loss = model(input_ids=_IDS, attention_mask=_MASK, labels=_LABELS).loss
    return loss, embedding_gradient_penalty(loss, captured.outputs, epsilon=epsilon)


def test_epsilon_zero_is_the_plain_loss():
    model = _tiny_bert()
    loss, pen = _penalised(model, epsilon=0.0)
    params = list(model.parameters())
    g_total = torch.autograd.grad(loss + pen, params, retain_graph=True, allow_unused=True)
    g_plain = torch.autograd.grad(loss, params, allow_unused=True)
    assert pen.item() == 0.0
    for a, b in zip(g_total, g_plain):
        assert (a is None and b is None) or torch.equal(a, b)


def test_penalty_gradient_is_nonzero_and_matches_finite_differences():
    model = _tiny_bert()
    params = [p for p in model.parameters() if p.requires_grad]
    _, pen = _penalised(model)
    grads = torch.autograd.grad(pen, params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
    flat = torch.cat([g.reshape(-1) for g in grads])
    assert flat.abs().max().item() > 1e-6  # double backward really reaches the parameters
    gen = torch.Generator().manual_seed(0)
    direction = [torch.randn(p.shape, generator=gen, dtype=DT) for p in params]
    analytic = sum((g * v).sum() for g, v in zip(grads, direction)).item()
    h = 1e-5
    values = []
    for sign in (1.0, -1.0):
        with torch.no_grad():
            for p, v in zip(params, direction):
                p.add_(sign * h * v)
        values.append(_penalised(model)[1].item())
        with torch.no_grad():
            for p, v in zip(params, direction):
                p.sub_(sign * h * v)
    numeric = (values[0] - values[1]) / (2 * h)
    assert abs(numeric - analytic) < 1e-6 * max(1.0, abs(analytic))


def test_penalty_is_per_occurrence_not_per_vocabulary_row():
    emb = nn.Embedding(10, 3, dtype=DT)
    c = torch.tensor([1.0, -2.0, 0.5], dtype=DT)
    ids = torch.tensor([[4, 4, 6]])  # token 4 twice
    with capture_embedding_outputs(emb) as captured:
        loss = (emb(ids) @ c).sum()
    pen = embedding_gradient_penalty(loss, captured.outputs, epsilon=2.0)
    # ∂L/∂e_pos = c at each of the 3 positions: ½·2·3·‖c‖² = 3·5.25
    assert pen.item() == pytest.approx(3 * 5.25, abs=1e-12)
    # the matrix gradient merges duplicates (row 4 gets 2c): ½·2·(4+1)·‖c‖²
    matrix_pen = gradient_penalty((emb(ids) @ c).sum(), emb.weight, weight=1.0)
    assert matrix_pen.item() == pytest.approx(5 * 5.25, abs=1e-12)


def test_frozen_embedding_still_gives_a_penalty():
    emb = nn.Embedding(10, 3, dtype=DT)
    emb.weight.requires_grad_(False)
    lin = nn.Linear(3, 1, dtype=DT)
    with capture_embedding_outputs(emb) as captured:
        loss = lin(emb(torch.tensor([[1, 2]]))).sum()
    pen = embedding_gradient_penalty(loss, captured.outputs)
    assert pen.item() == pytest.approx(0.5 * 2 * lin.weight.detach().pow(2).sum().item(), abs=1e-12)
    pen.backward()
    assert lin.weight.grad is not None


def test_parameter_gradient_penalty_hand_computed():
    """L = ½(wᵀx - y)²: ∇_w L = r x, penalty = r²‖x‖², its gradient = 2 r ‖x‖² x."""
    x = torch.tensor([1.0, 2.0, -1.0], dtype=DT)
    y = 0.5
    w = torch.tensor([0.3, -0.2, 0.4], dtype=DT, requires_grad=True)
    loss = 0.5 * (w @ x - y) ** 2
    pen = parameter_gradient_penalty(loss, [w], weight=1.0)
    r = (w.detach() @ x - y).item()
    assert pen.item() == pytest.approx(r * r * 6.0, abs=1e-12)
    (g,) = torch.autograd.grad(pen, w)
    assert torch.allclose(g, 2 * r * 6.0 * x, rtol=0, atol=1e-12)


def test_errors():
    with pytest.raises(ConfigError):
        gradient_penalty(torch.ones(2, requires_grad=True) * 2, torch.ones(2))
    a = torch.ones(2, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    with pytest.raises(ConfigError):
        gradient_penalty((a * 2).sum(), b)
    with pytest.raises(ConfigError):
        parameter_gradient_penalty(a.sum(), [torch.ones(2)])
