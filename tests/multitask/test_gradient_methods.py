"""Min-norm (MGDA) and primary/auxiliary directions (spec training.md §5.2–5.3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from torch import nn

from kexue.errors import ConfigError
from kexue.multitask import GradientBalancer, gram_matrix, min_norm_weights, primary_aux_weights

DT = torch.float64


def test_two_task_closed_form_golden_values():
    g = torch.tensor([[1.0, 0.0], [-0.5, 1.0]], dtype=DT)
    alpha = min_norm_weights(g)
    assert alpha[1].item() == pytest.approx(6 / 13, abs=1e-15)
    u = alpha @ g
    assert torch.allclose(u, torch.tensor([4 / 13, 6 / 13], dtype=DT), atol=1e-15)
    for gi in g:
        assert (gi @ u).item() == pytest.approx(4 / 13, abs=1e-15)
    assert (u @ u).item() == pytest.approx(4 / 13, abs=1e-15)
    clipped = min_norm_weights(torch.tensor([[1.0, 0.0], [2.0, 0.0]], dtype=DT))
    assert clipped.tolist() == [1.0, 0.0]


def test_orthonormal_three_tasks_give_uniform_weights():
    alpha = min_norm_weights(torch.eye(3, dtype=DT), method="frank_wolfe")
    assert torch.allclose(alpha, torch.full((3,), 1 / 3, dtype=DT), atol=1e-9)


def _scipy_min_norm(m: np.ndarray) -> float:
    n = m.shape[0]
    res = minimize(lambda a: a @ m @ a, np.full(n, 1 / n), jac=lambda a: 2 * m @ a, method="SLSQP",
                   bounds=[(0, 1)] * n, constraints=[{"type": "eq", "fun": lambda a: a.sum() - 1}],
                   options={"ftol": 1e-15, "maxiter": 1000})
    return float(res.fun)


@pytest.mark.parametrize("seed", range(5))
def test_frank_wolfe_matches_scipy_on_random_problems(seed):
    gen = torch.Generator().manual_seed(seed)
    n = 3 + seed
    g = torch.randn(n, 20, generator=gen, dtype=DT) + 0.5  # overlapping directions: interior optimum
    m = gram_matrix(g)
    alpha = min_norm_weights(m, is_gram=True, method="frank_wolfe", max_iter=5000)
    assert alpha.min().item() >= 0 and alpha.sum().item() == pytest.approx(1.0, abs=1e-12)
    ours = (alpha @ m @ alpha).item()
    ref = _scipy_min_norm(m.numpy())
    assert ours <= ref * (1 + 1e-3) + 1e-12
    u = alpha @ g
    assert (g @ u).min().item() >= (u @ u).item() * (1 - 1e-2) - 1e-9  # optimality: min⟨gᵢ,u⟩ ≥ ‖u‖²


def test_averaging_iteration_decreases_and_gram_equals_vectors():
    gen = torch.Generator().manual_seed(9)
    g = torch.randn(5, 20, generator=gen, dtype=DT)
    m = gram_matrix(g)
    obj = [(a @ m @ a).item() for a in (min_norm_weights(m, is_gram=True, method="average", max_iter=k)
                                        for k in (10, 100, 1000))]
    assert obj[0] >= obj[1] >= obj[2]
    a_vec = min_norm_weights(g, method="frank_wolfe", max_iter=300)
    a_gram = min_norm_weights(m, is_gram=True, method="frank_wolfe", max_iter=300)
    assert torch.allclose(a_vec, a_gram, rtol=0, atol=1e-12)


def test_normalised_sum_is_pareto_safe_for_two_tasks():
    gen = torch.Generator().manual_seed(3)
    g1, g2 = torch.randn(10_000, 6, generator=gen, dtype=DT), torch.randn(10_000, 6, generator=gen, dtype=DT)
    u = g1 / g1.norm(dim=1, keepdim=True) + g2 / g2.norm(dim=1, keepdim=True)
    assert ((g1 * u).sum(1).min().item() >= -1e-12) and ((g2 * u).sum(1).min().item() >= -1e-12)


def test_mgda_ub_lemma_counterexample():
    x, y, m = torch.tensor([1.0, -2.0]), torch.tensor([1.0, 1.0]), torch.diag(torch.tensor([3.0, 1.0]))
    assert (x @ y).item() == -1.0 and (x @ m @ y).item() == 1.0


def test_primary_aux_golden_and_no_conflict():
    lam = primary_aux_weights(torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=DT))
    assert lam.tolist() == [0.5]
    u = torch.tensor([1.0, 0.0], dtype=DT) + lam[0] * torch.tensor([-1.0, 1.0], dtype=DT)
    assert u.tolist() == [0.5, 0.5]
    assert primary_aux_weights(torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=DT)).tolist() == [0.0]


def test_primary_aux_kkt_on_random_instances():
    gen = torch.Generator().manual_seed(11)
    for _ in range(10):
        g = torch.randn(5, 8, generator=gen, dtype=DT)
        lam = primary_aux_weights(g, max_sweeps=200, method="cyclic")
        u = g[0] + lam @ g[1:]
        dots = g[1:] @ u
        assert dots.min().item() >= -1e-9
        assert (lam * dots).abs().max().item() < 1e-8
        assert lam.min().item() >= 0
        # Su's greedy rule (τ = argmin ⟨gᵢ,u⟩) reaches feasibility but can stall before complementary
        # slackness: a λ that should shrink is never picked once its constraint is satisfied.
        lam_g = primary_aux_weights(g, max_sweeps=200, method="greedy")
        u_g = g[0] + lam_g @ g[1:]
        assert (g[1:] @ u_g).min().item() >= -1e-9
        assert (u_g @ u_g).item() >= (u @ u).item() - 1e-12


def test_gradient_balancer_writes_min_norm_direction_and_keeps_head_grads():
    torch.manual_seed(0)
    shared = nn.Linear(3, 4, dtype=DT)
    heads = nn.ModuleList([nn.Linear(4, 1, dtype=DT) for _ in range(2)])
    x = torch.randn(5, 3, dtype=DT)

    def losses():
        h = torch.tanh(shared(x))
        return {"a": heads[0](h).pow(2).mean(), "b": (heads[1](h) - 1).pow(2).mean()}

    ls = losses()
    params = list(shared.parameters())
    g = torch.stack([torch.cat([t.reshape(-1) for t in torch.autograd.grad(v, params, retain_graph=True)])
                     for v in ls.values()])
    alpha_ref = min_norm_weights(g)
    head_ref = [torch.autograd.grad(ls[k], list(heads[i].parameters()), retain_graph=True)
                for i, k in enumerate(ls)]
    balancer = GradientBalancer(shared.parameters(), mode="pareto")
    alpha = balancer.backward(ls)
    assert torch.allclose(alpha, alpha_ref, atol=1e-12)
    got = torch.cat([p.grad.reshape(-1) for p in params])
    assert torch.allclose(got, alpha_ref @ g, atol=1e-12)
    for i in range(2):
        for p, ref in zip(heads[i].parameters(), head_ref[i]):
            assert torch.allclose(p.grad, ref, atol=1e-12)
    # primary/aux and shared-encoder modes run and return the documented weights
    for p in list(shared.parameters()) + list(heads.parameters()):
        p.grad = None
    w = GradientBalancer(shared.parameters(), mode="primary_aux").backward(list(losses().values()))
    assert w[0].item() == 1.0 and w[1].item() >= 0
    h = torch.tanh(shared(x))
    ls2 = [heads[0](h).pow(2).mean(), (heads[1](h) - 1).pow(2).mean()]
    w2 = GradientBalancer(shared.parameters(), approx="shared_encoder").backward(ls2, encoder_output=h)
    assert w2.sum().item() == pytest.approx(1.0)
    with pytest.raises(ConfigError):
        GradientBalancer(shared.parameters(), mode="x")
