"""Gradient accumulation inside momentum (spec training.md §1, https://kexue.fm/archives/8634)."""

from __future__ import annotations

import copy

import pytest
import torch

from kexue.errors import ConfigError
from kexue.optim import AccumAdam, AccumAdamW, AccumSGDM, beta_tilde

DT = torch.float64


def _quadratic(d: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=DT)
    h = a @ a.T / d + torch.eye(d, dtype=DT)
    b = torch.randn(d, generator=g, dtype=DT)
    return lambda th: 0.5 * th @ h @ th - b @ th


def _micro_loss(theta: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """A non-quadratic loss whose gradient depends on the micro-batch."""
    return torch.log1p(torch.exp(batch[:, :-1] @ theta * batch[:, -1])).mean() + 0.1 * (theta ** 4).sum()


def test_k1_equals_torch_sgd():
    f = _quadratic()
    alpha, beta = 0.05, 0.9
    th1 = torch.randn(6, dtype=DT, requires_grad=True)
    th2 = th1.detach().clone().requires_grad_(True)
    ours = AccumSGDM([th1], lr=alpha, momentum=beta, accumulation_steps=1)
    ref = torch.optim.SGD([th2], lr=alpha * (1 - beta), momentum=beta, dampening=0)
    for _ in range(50):
        for th, opt in ((th1, ours), (th2, ref)):
            opt.zero_grad()
            f(th).backward()
            opt.step()
    assert (th1 - th2).abs().max().item() < 1e-12
    assert ours.is_update_step


def _explicit_sgdm(theta0, batches, k, alpha, beta):
    """Explicit accumulation: average k micro-gradients at the same θ, then one EMA-SGDM step."""
    theta, m = theta0.clone(), torch.zeros_like(theta0)
    for c in range(len(batches) // k):
        grads = []
        for b in batches[c * k:(c + 1) * k]:
            th = theta.clone().requires_grad_(True)
            grads.append(torch.autograd.grad(_micro_loss(th, b), th)[0])
        m = beta * m + (1 - beta) * torch.stack(grads).mean(0)
        theta = theta - alpha * m
    return theta


@pytest.mark.parametrize("k", [2, 3, 5])
def test_k_gt_1_equals_explicit_accumulation_and_frozen_between_updates(k):
    gen = torch.Generator().manual_seed(k)
    batches = [torch.randn(4, 5, generator=gen, dtype=DT) for _ in range(10 * k)]
    theta0 = torch.randn(4, generator=gen, dtype=DT)
    th = theta0.clone().requires_grad_(True)
    opt = AccumSGDM([th], lr=0.1, momentum=0.9, accumulation_steps=k)
    for t, b in enumerate(batches, start=1):
        before = th.detach().clone()
        opt.zero_grad()
        _micro_loss(th, b).backward()
        opt.step()
        if t % k != 0:
            assert torch.equal(th.detach(), before)  # bit-identical on non-update steps
            assert not opt.is_update_step
        else:
            assert opt.is_update_step
    expected = _explicit_sgdm(theta0, batches, k, 0.1, 0.9)
    assert (th.detach() - expected).abs().max().item() < 1e-12


def test_adam_k1_equals_torch_adam_and_adamw():
    f = _quadratic(seed=1)
    for ours_cls, ref_cls, wd in ((AccumAdam, torch.optim.Adam, 0.0), (AccumAdamW, torch.optim.AdamW, 0.05)):
        th1 = torch.randn(6, dtype=DT, requires_grad=True)
        th2 = th1.detach().clone().requires_grad_(True)
        ours = ours_cls([th1], lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
        ref = ref_cls([th2], lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
        for _ in range(100):
            for th, opt in ((th1, ours), (th2, ref)):
                opt.zero_grad()
                f(th).backward()
                opt.step()
        assert (th1 - th2).abs().max().item() < 1e-10


def _explicit_adam(theta0, grad_fn, cycles, k, lr, betas, eps):
    theta, m, v = theta0.clone(), torch.zeros_like(theta0), torch.zeros_like(theta0)
    for n in range(1, cycles + 1):
        g = torch.stack([grad_fn(theta, (n - 1) * k + i) for i in range(k)]).mean(0)
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        mh, vh = m / (1 - betas[0] ** n), v / (1 - betas[1] ** n)
        theta = theta - lr * mh / (vh.sqrt() + eps)
    return theta, m, v


def test_adam_k_gt_1_identical_micro_gradients_equals_explicit():
    k, lr, betas, eps = 4, 0.05, (0.9, 0.999), 1e-8
    f = _quadratic(seed=2)

    def grad_fn(theta, _t):
        th = theta.clone().requires_grad_(True)
        return torch.autograd.grad(f(th), th)[0]

    theta0 = torch.randn(6, dtype=DT)
    th = theta0.clone().requires_grad_(True)
    opt = AccumAdam([th], lr=lr, betas=betas, eps=eps, accumulation_steps=k)
    for t in range(1, 20 * k + 1):
        before = th.detach().clone()
        opt.zero_grad()
        f(th).backward()
        opt.step()
        if t % k:
            assert torch.equal(before, th.detach())
    expected, _, _ = _explicit_adam(theta0, grad_fn, 20, k, lr, betas, eps)
    assert (th.detach() - expected).abs().max().item() < 1e-10


def test_adam_differing_micro_gradients_first_moment_exact_second_inflated():
    k, betas = 3, (0.9, 0.999)
    gen = torch.Generator().manual_seed(3)
    grads = [torch.randn(7, generator=gen, dtype=DT) for _ in range(k)]
    th = torch.zeros(7, dtype=DT, requires_grad=True)
    opt = AccumAdam([th], lr=0.01, betas=betas, accumulation_steps=k)
    for g in grads:
        th.grad = g.clone()
        opt.step()
    state = opt.state[th]
    mean = torch.stack(grads).mean(0)
    m_explicit = (1 - betas[0]) * mean
    v_explicit = (1 - betas[1]) * mean * mean
    assert torch.allclose(state["exp_avg"], m_explicit, rtol=0, atol=1e-15)
    assert bool((state["exp_avg_sq"] >= v_explicit).all())
    # property 6: with zero init, after t = k the bias-corrected first moment is the mean gradient
    assert torch.allclose(state["exp_avg"] / (1 - betas[0]), mean, rtol=0, atol=1e-15)
    # no gradient cache: two moment buffers, the update count and the int index of the last gradient's cycle
    assert set(state) == {"step", "exp_avg", "exp_avg_sq", "cycle"}
    assert state["step"].numel() == 1 and isinstance(state["cycle"], int)


def test_beta_tilde_table_and_state_contents():
    table = {(0.9, 2): (0.95, 0.9025), (0.9, 4): (0.975, 0.90369), (0.9, 8): (0.9875, 0.90427),
             (0.999, 4): (0.99975, 0.9990004)}
    for (beta, k), (bt, btk) in table.items():
        assert beta_tilde(beta, k) == pytest.approx(bt, abs=1e-12)
        assert beta_tilde(beta, k) ** k == pytest.approx(btk, abs=5e-6)
    th = torch.zeros(3, requires_grad=True)
    opt = AccumSGDM([th], lr=0.1, accumulation_steps=2)
    th.grad = torch.ones(3)
    opt.step()
    assert set(opt.state[th]) == {"momentum_buffer", "cycle"} and isinstance(opt.state[th]["cycle"], int)
    with pytest.raises(ConfigError):
        AccumSGDM([th], lr=0.1, accumulation_steps=0)
    with pytest.raises(ConfigError):
        AccumAdam([th], mode="bogus")


def test_state_dict_round_trip_keeps_the_cycle():
    gen = torch.Generator().manual_seed(5)
    batches = [torch.randn(4, 5, generator=gen, dtype=DT) for _ in range(9)]
    th_a = torch.randn(4, dtype=DT, requires_grad=True)
    th_b = th_a.detach().clone().requires_grad_(True)
    opt_a = AccumAdamW([th_a], lr=0.01, accumulation_steps=3)
    opt_b = AccumAdamW([th_b], lr=0.01, accumulation_steps=3)
    for i, b in enumerate(batches):
        if i == 4:  # resume mid-cycle from a saved state
            opt_b = AccumAdamW([th_b], lr=0.01, accumulation_steps=3)
            opt_b.load_state_dict(opt_a_state)
        for th, opt in ((th_a, opt_a), (th_b, opt_b)):
            opt.zero_grad()
            _micro_loss(th, b).backward()
            opt.step()
        if i == 3:
            opt_a_state = copy.deepcopy(opt_a.state_dict())  # torch state dicts hold references
    assert torch.equal(th_a, th_b)


def test_sparse_update_and_beta_tilde_modes_only_move_every_k():
    for mode in ("sparse_update", "beta_tilde"):
        th = torch.ones(3, dtype=DT, requires_grad=True)
        opt = AccumAdam([th], lr=0.1, accumulation_steps=4, mode=mode)
        moved = []
        for _ in range(8):
            before = th.detach().clone()
            th.grad = torch.ones(3, dtype=DT)
            opt.step()
            moved.append(not torch.equal(before, th.detach()))
        assert moved == [False, False, False, True] * 2
