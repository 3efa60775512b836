"""Loss-weighting schemes (spec training.md §5.1, https://kexue.fm/archives/8870)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kexue.errors import ConfigError
from kexue.multitask import (
    MultiTaskLoss,
    UncertaintyWeighting,
    classification_prior_loss,
    generalized_mean,
    regression_prior_loss,
    softmax_initial_loss,
)

DT = torch.float64


def test_generalized_mean_values_and_monotonicity():
    x = torch.tensor([1.0, 4.0], dtype=DT)
    assert generalized_mean(x, 1.0).item() == pytest.approx(2.5, abs=1e-12)
    assert generalized_mean(x, 0.0).item() == pytest.approx(2.0, abs=1e-12)
    assert generalized_mean(x, -1.0).item() == pytest.approx(1.6, abs=1e-12)
    assert generalized_mean(x, 50.0).item() == pytest.approx(4.0, rel=0.05)
    assert generalized_mean(x, -50.0).item() == pytest.approx(1.0, rel=0.05)
    gammas = [-50, -5, -1, -0.5, 0, 0.5, 1, 2, 5, 50]
    values = [generalized_mean(x, g).item() for g in gammas]
    assert all(a <= b + 1e-12 for a, b in zip(values, values[1:]))
    with pytest.raises(ConfigError):
        generalized_mean(torch.tensor([0.0, 1.0]), -1.0)


def _setup(seed=0):
    torch.manual_seed(seed)
    shared = nn.Linear(4, 4, dtype=DT)
    x = torch.randn(6, 4, dtype=DT)
    h = torch.tanh(shared(x))
    l1 = (h[:, 0] - 1.0).pow(2).mean() + 0.1
    l2 = h[:, 1:].exp().mean()
    return shared, l1, l2


def _direction(shared, total):
    g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(total, list(shared.parameters()), retain_graph=True)])
    return g / g.norm()


@pytest.mark.parametrize("scheme", ["initial", "prior", "realtime", "grad_norm"])
def test_scale_invariance_of_the_direction(scheme):
    shared, l1, l2 = _setup()

    def make():
        if scheme == "initial":
            return MultiTaskLoss("initial")  # records the first call's losses
        if scheme == "prior":
            return None
        return MultiTaskLoss(scheme, shared_params=shared.parameters())

    if scheme == "prior":
        d1 = _direction(shared, MultiTaskLoss("prior", prior_losses=[0.7, 2.0])([l1, l2]))
        d2 = _direction(shared, MultiTaskLoss("prior", prior_losses=[0.7 * 3.0, 2.0])([3.0 * l1, l2]))
    else:
        d1 = _direction(shared, make()({"a": l1, "b": l2}))
        d2 = _direction(shared, make()({"a": 3.0 * l1, "b": l2}))
    assert torch.allclose(d1, d2, rtol=0, atol=1e-12)
    # the equal scheme is not scale-invariant
    e1 = _direction(shared, MultiTaskLoss("equal")([l1, l2]))
    e2 = _direction(shared, MultiTaskLoss("equal")([3.0 * l1, l2]))
    assert (e1 - e2).norm().item() > 1e-3


def test_shift_changes_realtime_but_not_grad_norm():
    shared, l1, l2 = _setup(1)
    rt = [_direction(shared, MultiTaskLoss("realtime")([l1 + c, l2])) for c in (0.0, 5.0)]
    gn = [_direction(shared, MultiTaskLoss("grad_norm", shared_params=shared.parameters())([l1 + c, l2]))
          for c in (0.0, 5.0)]
    assert (rt[0] - rt[1]).norm().item() > 1e-3
    assert torch.allclose(gn[0], gn[1], rtol=0, atol=1e-12)


def test_realtime_value_is_n_and_gradient_is_that_of_sum_log():
    shared, l1, l2 = _setup(2)
    l3 = l1 * l2 + 0.3
    total = MultiTaskLoss("realtime")([l1, l2, l3])
    assert total.item() == 3.0
    params = list(shared.parameters())
    g_ours = torch.autograd.grad(total, params, retain_graph=True)
    g_ref = torch.autograd.grad(torch.log(l1) + torch.log(l2) + torch.log(l3), params)
    for a, b in zip(g_ours, g_ref):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_initial_and_prior_helpers_and_state():
    assert softmax_initial_loss(10) == pytest.approx(math.log(10))
    assert classification_prior_loss([1, 1, 2]) == pytest.approx(-(0.25 * math.log(0.25) * 2 + 0.5 * math.log(0.5)))
    assert regression_prior_loss(torch.tensor([1.0, 3.0])) == pytest.approx(1.0)
    crit = MultiTaskLoss("initial")
    a, b = torch.tensor(2.0), torch.tensor(4.0)
    assert crit({"x": a, "y": b}).item() == pytest.approx(2.0)
    assert crit({"x": a / 2, "y": b / 4}).item() == pytest.approx(0.5 + 0.25)
    other = MultiTaskLoss("initial")
    other.load_state_dict(crit.state_dict())
    assert other.init_losses == {"x": 2.0, "y": 4.0}
    with pytest.raises(ConfigError):
        crit({"x": a, "z": b})
    with pytest.raises(ConfigError):
        MultiTaskLoss("bogus")
    with pytest.raises(ConfigError):
        MultiTaskLoss("grad_norm")


def test_uncertainty_weighting_external_formula():
    uw = UncertaintyWeighting(["a", "b"])
    with torch.no_grad():
        uw.log_sigma.copy_(torch.tensor([0.5, -0.2]))
    out = uw({"a": torch.tensor(2.0), "b": torch.tensor(3.0)})
    expected = 2.0 / (2 * math.exp(1.0)) + 0.5 + 3.0 / (2 * math.exp(-0.4)) - 0.2
    assert out.item() == pytest.approx(expected, rel=1e-6)
