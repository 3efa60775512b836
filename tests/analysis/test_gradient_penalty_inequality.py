"""The input/parameter gradient-penalty inequality (https://kexue.fm/archives/8796): training spec §3, tests 1-4."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from kexue.analysis.gradient_penalty import gradient_penalty_inequality
from kexue.errors import ConfigError


def _random_mlp(widths, act, gen):
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        lin = nn.Linear(a, b).double()
        with torch.no_grad():
            scale = float(torch.empty(()).uniform_(0.2, 2.0, generator=gen))
            lin.weight.normal_(0.0, scale / a ** 0.5, generator=gen)
            lin.bias.normal_(0.0, 0.5, generator=gen)
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def _f(y):  # a scalar function of the output: a squared error against a fixed target plus a linear term
    target = torch.linspace(-1, 1, y.numel(), dtype=y.dtype)
    return 0.5 * (y - target).pow(2).sum() + 0.3 * y.sum()


def test_ratio_at_most_one_on_1000_random_mlps_and_each_layer_part_holds():
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    worst = 0.0
    for draw in range(1000):
        depth = int(rng.integers(1, 5))
        widths = [int(w) for w in rng.integers(3, 65, size=depth + 1)]
        if draw % 4 == 0:
            widths[-1] = 1
        act = (nn.Tanh, nn.GELU)[draw % 2]
        mlp = _random_mlp(widths, act, gen)
        x = torch.randn(widths[0], generator=gen, dtype=torch.float64)
        res = gradient_penalty_inequality(mlp, x, _f)
        assert res.ratio <= 1 + 1e-9, (widths, act, res.ratio)
        for layer in res.per_layer:
            assert layer.w_lhs <= layer.w_rhs * (1 + 1e-9)
            assert layer.b_lhs <= layer.b_rhs * (1 + 1e-9)
        worst = max(worst, res.ratio)
    assert worst > 0.3  # the bound is not vacuous on these draws


def test_rhs_and_input_gradient_match_plain_autograd():
    gen = torch.Generator().manual_seed(1)
    mlp = _random_mlp([5, 8, 8, 3], nn.Tanh, gen)
    x = torch.randn(5, generator=gen, dtype=torch.float64, requires_grad=True)
    value = _f(mlp(x))
    grads = torch.autograd.grad(value, [x, *mlp.parameters()])
    res = gradient_penalty_inequality(mlp, x, _f)
    assert res.input_grad_sq == pytest.approx(float(grads[0].pow(2).sum()), rel=1e-12)
    assert res.rhs == pytest.approx(sum(float(g.pow(2).sum()) for g in grads[1:]), rel=1e-12)
    # J_2 of a tanh layer, by hand: diag(1 - tanh(z)^2) W
    w, b = mlp[0].weight.detach(), mlp[0].bias.detach()
    jac = (1 - torch.tanh(w @ x.detach() + b) ** 2)[:, None] * w
    assert res.per_layer[1].j_norm == pytest.approx(float(torch.linalg.svdvals(jac)[0]), rel=1e-12)


def test_equality_case():
    gen = torch.Generator().manual_seed(2)
    for _ in range(20):
        lin = nn.Linear(6, 4).double()
        with torch.no_grad():
            lin.weight.normal_(generator=gen)
            lin.bias.normal_(generator=gen)
        u, _, _ = torch.linalg.svd(lin.weight.detach())
        c = u[:, 0]
        x = torch.randn(6, generator=gen, dtype=torch.float64)
        res = gradient_penalty_inequality(nn.Sequential(lin), x, lambda y: c @ y)
        assert abs(res.ratio - 1.0) < 1e-10
        assert res.rhs == pytest.approx(1.0 + float(x @ x), rel=1e-12)  # ||c x^T||^2 + ||c||^2


def test_halved_spectral_norm_shows_violations():
    # with ||W||_2 / 2 in place of ||W||_2 every term of the bracket is 4x larger: near equality ([3, 4, 1])
    # the check above must catch it
    gen = torch.Generator().manual_seed(3)
    violations = 0
    for _ in range(1000):
        mlp = _random_mlp([3, 4, 1], nn.Tanh, gen)
        x = torch.randn(3, generator=gen, dtype=torch.float64)
        res = gradient_penalty_inequality(mlp, x, _f)
        assert res.ratio <= 1 + 1e-9
        if 4.0 * res.ratio > 1 + 1e-9:
            violations += 1
    assert violations > 0


def test_frobenius_norm_is_looser_but_valid():
    gen = torch.Generator().manual_seed(4)
    mlp = _random_mlp([10, 32, 32, 1], nn.GELU, gen)
    x = torch.randn(10, generator=gen, dtype=torch.float64)
    spectral = gradient_penalty_inequality(mlp, x, _f)
    frob = gradient_penalty_inequality(mlp, x, _f, norm="frobenius")
    assert frob.ratio <= spectral.ratio <= 1 + 1e-9


def test_refuses_what_is_not_a_plain_mlp():
    with pytest.raises(ConfigError, match="plain MLPs"):
        gradient_penalty_inequality(nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3)), torch.randn(3), _f)
    with pytest.raises(ConfigError, match="--norm"):
        gradient_penalty_inequality(nn.Sequential(nn.Linear(3, 3)), torch.randn(3), _f, norm="nuclear")
    with pytest.raises(ConfigError, match="scalar"):
        gradient_penalty_inequality(nn.Sequential(nn.Linear(3, 3)), torch.randn(3), lambda y: y)
