"""ChildTuning-F / -D (spec training.md §2, https://kexue.fm/archives/8764)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from kexue.errors import ConfigError
from kexue.optim import ChildTuningAdamW, compute_fisher_mask


def _mean_step_over_lr(p: float, apply_to: str = "grad", steps: int = 6000, last: int = 1000) -> float:
    """Constant gradient 1 on 2000 coordinates; mean |update|/lr over the last steps."""
    lr = 1e-3
    theta = torch.zeros(2000, dtype=torch.float64, requires_grad=True)
    gen = torch.Generator().manual_seed(123)
    opt = ChildTuningAdamW([theta], lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, reserve_p=p,
                           mode="F", apply_to=apply_to, generator=gen)
    theta.grad = torch.ones(2000, dtype=torch.float64)
    total = 0.0
    for t in range(steps):
        before = theta.detach().clone() if t >= steps - last else None
        opt.step()
        if before is not None:
            total += (before - theta.detach()).mean().item() / lr
    return total / last


@pytest.mark.parametrize("p", [0.5, 0.25, 0.1])
def test_gradient_dropout_under_adam_scales_lr_by_sqrt_p(p):
    # spec golden values (20 000 steps): 0.7065, 0.4995, 0.3149; test: within 2 % of sqrt(p)
    assert _mean_step_over_lr(p) == pytest.approx(math.sqrt(p), rel=0.02)


def test_update_dropout_keeps_the_step_size():
    assert _mean_step_over_lr(0.25, apply_to="update", steps=2000, last=500) == pytest.approx(1.0, rel=0.03)


def _train_pair(opt_a, opt_b, pa, pb, steps=30, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        g = torch.randn(pa.shape, generator=gen)
        pa.grad, pb.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()


@pytest.mark.parametrize("mode", ["F", "D"])
def test_reserve_p_one_is_adamw_bit_for_bit(mode):
    pa = nn.Parameter(torch.randn(50, 7))
    pb = nn.Parameter(pa.detach().clone())
    ours = ChildTuningAdamW([pa], lr=1e-2, weight_decay=0.01, reserve_p=1.0, mode=mode)
    if mode == "D":
        ours.set_gradient_mask({pa: torch.ones(50, 7, dtype=torch.bool)})
    ref = torch.optim.AdamW([pb], lr=1e-2, weight_decay=0.01)
    _train_pair(ours, ref, pa, pb)
    assert torch.equal(pa, pb)


def test_f_mode_mask_density_unbiasedness_and_momentum_leak():
    p, n = 0.3, 10_000
    theta = nn.Parameter(torch.zeros(n, dtype=torch.float64))
    opt = ChildTuningAdamW([theta], lr=1e-3, weight_decay=0.0, reserve_p=p, mode="F",
                           generator=torch.Generator().manual_seed(1))
    scaled = opt._mask_for(theta)
    frac = (scaled != 0).double().mean().item()
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(frac - p) < 3 * sigma
    assert scaled.mean().item() == pytest.approx(1.0, abs=3 * sigma / p)
    # an entry whose gradient is masked at step t still moves when its momentum is non-zero
    theta.grad = torch.ones(n, dtype=torch.float64)
    opt.step()
    before = theta.detach().clone()
    m_before = opt.state[theta]["exp_avg"].clone()
    opt.step()
    masked_now = opt.state[theta]["exp_avg"] == 0.9 * m_before  # zero gradient reached Adam at step 2
    leak = masked_now & (m_before != 0)
    assert int(leak.sum()) > 1000
    assert bool((theta.detach()[leak] != before[leak]).all())
    assert torch.equal(theta.grad, torch.ones(n, dtype=torch.float64))  # .grad left untouched


def test_variance_identity_monte_carlo():
    gen = torch.Generator().manual_seed(7)
    mu, sigma, p, n = 0.7, 1.3, 0.3, 2_000_000
    g = mu + sigma * torch.randn(n, generator=gen, dtype=torch.float64)
    eps = (torch.rand(n, generator=gen, dtype=torch.float64) < p).double()
    expected = sigma ** 2 + (1 - p) / p * (mu ** 2 + sigma ** 2)
    assert (g * eps / p).var().item() == pytest.approx(expected, rel=0.01)


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 6)
        self.layer = nn.Linear(6, 6)
        self.classifier = nn.Linear(6, 2)

    def forward(self, x):
        return self.classifier(torch.tanh(self.layer(torch.tanh(self.embed(x)))))


def test_d_mode_density_fixed_mask_and_frozen_entries():
    model = _Tiny()
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 4, generator=gen), torch.randint(0, 2, (8,), generator=gen)) for _ in range(5)]
    ce = lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1])  # noqa: E731
    masks = compute_fisher_mask(model, batches, ce, reserve_p=0.25)
    assert set(masks) == {"layer.weight", "layer.bias"}  # only names containing "layer" are masked
    total = sum(m.numel() for m in masks.values())
    kept = sum(int(m.sum()) for m in masks.values())
    assert abs(kept - 0.25 * total) <= 1
    opt = ChildTuningAdamW(model.parameters(), lr=1e-2, weight_decay=0.0, reserve_p=0.25, mode="D")
    opt.set_gradient_mask(masks, model=model)
    w0, e0 = model.layer.weight.detach().clone(), model.embed.weight.detach().clone()
    for b in batches * 2:
        opt.zero_grad()
        ce(model, b).backward()
        opt.step()
    w = model.layer.weight.detach()
    m = masks["layer.weight"]
    assert torch.equal(w[~m], w0[~m])          # masked entries never change (bitwise)
    assert bool((w[m] != w0[m]).all())         # unmasked ones do
    assert bool((model.embed.weight.detach() != e0).all())  # parameters outside the filter are never masked
    # the mask travels with the optimizer state
    opt2 = ChildTuningAdamW(model.parameters(), lr=1e-2, reserve_p=0.25, mode="D")
    opt2.load_state_dict(opt.state_dict())
    assert torch.equal(opt2._masks[model.layer.weight], m)


def test_decay_masked_option():
    w = nn.Parameter(torch.ones(4, dtype=torch.float64))
    opt = ChildTuningAdamW([w], lr=0.1, weight_decay=0.5, reserve_p=0.5, mode="D", decay_masked=False)
    mask = torch.tensor([True, False, True, False])
    opt.set_gradient_mask({w: mask})
    w.grad = torch.ones(4, dtype=torch.float64)
    opt.step()
    assert torch.equal(w.detach()[~mask], torch.ones(2, dtype=torch.float64))
    w2 = nn.Parameter(torch.ones(4, dtype=torch.float64))
    opt2 = ChildTuningAdamW([w2], lr=0.1, weight_decay=0.5, reserve_p=0.5, mode="D")  # official: decay all
    opt2.set_gradient_mask({w2: mask})
    w2.grad = torch.ones(4, dtype=torch.float64)
    opt2.step()
    assert torch.allclose(w2.detach()[~mask], torch.full((2,), 0.95, dtype=torch.float64))


def test_fisher_of_logistic_regression_matches_analytic():
    torch.manual_seed(0)
    model = nn.Linear(3, 1, dtype=torch.float64)
    gen = torch.Generator().manual_seed(2)
    batches = [(torch.randn(5, 3, generator=gen, dtype=torch.float64),
                torch.randint(0, 2, (5,), generator=gen).double()) for _ in range(4)]

    def nll(m, b):
        return nn.functional.binary_cross_entropy_with_logits(m(b[0]).squeeze(-1), b[1])

    _, scores = compute_fisher_mask(model, batches, nll, reserve_p=0.5, param_filter=None, clip_grad_norm=None,
                                    return_scores=True)
    w, bias = model.weight.detach()[0], model.bias.detach()[0]
    gw, gb = [], []
    for x, y in batches:  # analytic gradient of the mean BCE: mean((σ(wx+b) - y) x)
        r = torch.sigmoid(x @ w + bias) - y
        gw.append((r[:, None] * x).mean(0))
        gb.append(r.mean())
    fw = (torch.stack(gw) ** 2).mean(0)
    fb = (torch.stack(gb) ** 2).mean()
    assert (scores["weight"][0] - fw).abs().max().item() < 1e-10
    assert abs(scores["bias"][0].item() - fb.item()) < 1e-10
    flat = np.concatenate([fw.numpy(), [fb.item()]])
    assert int(sum(int(m.sum()) for m in compute_fisher_mask(
        model, batches, nll, reserve_p=0.5, param_filter=None, clip_grad_norm=None).values())) == int(
        (flat >= np.percentile(flat, 50)).sum())


def test_bad_options_raise():
    w = nn.Parameter(torch.ones(2))
    with pytest.raises(ConfigError):
        ChildTuningAdamW([w], reserve_p=0.0)
    with pytest.raises(ConfigError):
        ChildTuningAdamW([w], mode="X")
    opt = ChildTuningAdamW([w], mode="D")
    with pytest.raises(ConfigError):
        opt.set_gradient_mask({"nope": torch.ones(2, dtype=torch.bool)}, model=nn.Linear(1, 1))
