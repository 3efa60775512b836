"""LoRA as a gradient-projecting optimizer (spec training.md §6, https://kexue.fm/archives/9590)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from kexue.adapters.lora_variants import LoRALinear
from kexue.errors import ConfigError
from kexue.optim.lora_projected import LoRAProjectedOptimizer, projected_gradients, random_factor

N, M = 6, 4


def _problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    base = nn.Linear(N, M, dtype=torch.float64)
    with torch.no_grad():
        base.weight.copy_(torch.randn(M, N, generator=g, dtype=torch.float64))
        base.bias.copy_(torch.randn(M, generator=g, dtype=torch.float64))
    x = torch.randn(32, N, generator=g, dtype=torch.float64)
    y = torch.randn(32, M, generator=g, dtype=torch.float64)
    return base, x, y


def test_projected_gradients_equal_autograd_of_the_module():
    base, x, y = _problem()
    for parametrization, r in (("product", 2), ("additive", 2), ("additive", 1)):
        layer = LoRALinear(copy.deepcopy(base), r=r, parametrization=parametrization, init="symmetric", scale=0.3)
        nn.functional.mse_loss(layer(x), y).backward()
        plain = copy.deepcopy(base)
        nn.functional.mse_loss(plain(x), y).backward()
        g = plain.weight.grad.T                                       # nn.Linear.weight = Wᵀ
        ga, gb = projected_gradients(g, layer.A.detach(), layer.B.detach(), parametrization, 0.3)
        torch.testing.assert_close(ga, layer.A.grad, rtol=0, atol=1e-10)
        torch.testing.assert_close(gb, layer.B.grad, rtol=0, atol=1e-10)


@pytest.mark.parametrize("opt_cls,kwargs", [(torch.optim.SGD, {"lr": 0.1}), (torch.optim.SGD, {"lr": 0.05,
                                                                                                "momentum": 0.9}),
                                            (torch.optim.Adam, {"lr": 0.01})])
@pytest.mark.parametrize("init,projection", [("zero_B", "fixed"), ("symmetric", "fixed"), ("zero_B", "additive")])
def test_optimizer_view_equals_module_lora_over_20_steps(opt_cls, kwargs, init, projection):
    base, x, y = _problem()
    parametrization = "additive" if projection == "additive" else "product"
    layer = LoRALinear(copy.deepcopy(base), r=2, init=init, parametrization=parametrization,
                       generator=torch.Generator().manual_seed(3))
    module_opt = opt_cls([layer.A, layer.B], **kwargs)
    plain = copy.deepcopy(base)
    plain.bias.requires_grad_(False)
    opt = LoRAProjectedOptimizer(opt_cls, [plain.weight], r=2, projection=projection, init=init, **kwargs)
    opt.set_factors(0, layer.A.detach(), layer.B.detach())            # the same starting factors
    torch.testing.assert_close(plain(x), layer(x), rtol=0, atol=1e-12)
    for step in range(20):
        for model, o in ((layer, module_opt), (plain, opt)):
            o.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            o.step()
        a, b = opt.factors[0]
        torch.testing.assert_close(a, layer.A, rtol=0, atol=1e-8)
        torch.testing.assert_close(b, layer.B, rtol=0, atol=1e-8)
        torch.testing.assert_close(plain.weight, layer.merged().weight, rtol=0, atol=1e-8)
    assert (plain.weight - base.weight).abs().max() > 1e-3           # it did move


def test_random_projection_step_is_the_articles_increment():
    base, x, y = _problem()
    plain = copy.deepcopy(base)
    plain.bias.requires_grad_(False)
    lr = 0.1
    opt = LoRAProjectedOptimizer(torch.optim.SGD, [plain.weight], r=3, projection="random",
                                 generator=torch.Generator().manual_seed(7), lr=lr)
    replay = torch.Generator().manual_seed(7)                     # the optimizer draws A then B before each step
    for _ in range(3):
        w_old = plain.weight.detach().T.clone()
        opt.zero_grad()
        nn.functional.mse_loss(plain(x), y).backward()
        g = plain.weight.grad.T.clone()
        opt.step()
        a = torch.randn(N, 3, generator=replay, dtype=torch.float64) / 6 ** 0.5
        b = torch.randn(3, M, generator=replay, dtype=torch.float64) / 6 ** 0.5
        # A' = A − ηGBᵀ, B' = B − ηAᵀG  =>  ΔW = −η(G BᵀB + AAᵀG) + η² G Bᵀ Aᵀ G
        want = -lr * (g @ b.T @ b + a @ a.T @ g) + lr ** 2 * g @ b.T @ a.T @ g
        torch.testing.assert_close(plain.weight.detach().T - w_old, want, rtol=0, atol=1e-12)


def test_monte_carlo_projections_have_identity_mean():
    g = torch.Generator().manual_seed(0)
    u = torch.randn(100_000, 8, 1, generator=g, dtype=torch.float64)    # the article's r = 1, N(0, 1) draws
    mean = (u @ u.transpose(1, 2)).mean(0)
    assert (mean - torch.eye(8, dtype=torch.float64)).abs().max() < 0.02
    # the optimizer's draws, N(0, 1/(2r)): E[AAᵀ] = I/2, E[BᵀB] = I/2, so E[AAᵀG + G BᵀB] = G (full-gradient step)
    a = random_factor((100_000, 8, 2), 2, g, torch.float64)
    b = random_factor((100_000, 2, 5), 2, g, torch.float64)
    torch.testing.assert_close((a @ a.transpose(1, 2)).mean(0), torch.eye(8, dtype=torch.float64) / 2, rtol=0,
                               atol=0.02)
    gm = torch.randn(8, 5, generator=g, dtype=torch.float64)
    increment = (a @ a.transpose(1, 2) @ gm + gm @ b.transpose(1, 2) @ b).mean(0)
    assert (increment - gm).abs().max() < 0.02 * gm.abs().max() * 3


def test_state_dict_roundtrip_resumes_the_same_trajectory():
    base, x, y = _problem()

    def run(steps, opt, model):
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()

    ref = copy.deepcopy(base)
    ref_opt = LoRAProjectedOptimizer(torch.optim.Adam, [ref.weight], r=2, projection="random", lr=0.01,
                                     other_params=[ref.bias])
    run(6, ref_opt, ref)
    first = copy.deepcopy(base)
    opt = LoRAProjectedOptimizer(torch.optim.Adam, [first.weight], r=2, projection="random", lr=0.01,
                                 other_params=[first.bias])
    run(3, opt, first)
    saved, weights = opt.state_dict(), copy.deepcopy(first.state_dict())
    second = copy.deepcopy(base)
    second.load_state_dict(weights)
    opt2 = LoRAProjectedOptimizer(torch.optim.Adam, [second.weight], r=2, projection="random", lr=0.01,
                                  other_params=[second.bias])
    opt2.load_state_dict(saved)
    run(3, opt2, second)
    torch.testing.assert_close(second.weight, ref.weight, rtol=0, atol=1e-12)
    torch.testing.assert_close(second.bias, ref.bias, rtol=0, atol=1e-12)
    # a learning-rate scheduler drives the base optimizer's groups
    sched = torch.optim.lr_scheduler.LambdaLR(opt2, lambda s: 0.5)
    assert opt2.base.param_groups[0]["lr"] == pytest.approx(0.005) and sched.get_last_lr()[0] == pytest.approx(0.005)


def test_errors():
    w = nn.Linear(6, 4).weight
    with pytest.raises(ConfigError, match="projection"):
        LoRAProjectedOptimizer(torch.optim.SGD, [w], projection="svd", lr=0.1)
    with pytest.raises(ConfigError, match="divide"):
        LoRAProjectedOptimizer(torch.optim.SGD, [w], r=4, projection="additive", lr=0.1)
    with pytest.raises(ConfigError, match="twice"):
        LoRAProjectedOptimizer(torch.optim.SGD, [w, w], lr=0.1)
