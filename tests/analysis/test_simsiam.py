"""SimSiam toy dynamics (https://kexue.fm/archives/7980): the spec's table and properties (training §8), and
SimSiamLoss's gradients against hand-derived formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from kexue.analysis.simsiam import (MODES, conserved_quantity, plot_simsiam, simsiam_field, simsiam_limit,
                                    simsiam_toy)
from kexue.errors import ConfigError
from kexue.losses.simsiam import SimSiamLoss, simsiam_predictor

# the spec's table (RK45, rtol 1e-10): (phi, theta) at t = 1, 5, 20
TABLE = {
    "stopgrad": {1: (0.6051, 0.1271), 5: (0.6737, 0.3222), 20: (0.9998, 0.8060)},
    "full": {1: (0.6034, 0.0853), 5: (0.6100, 0.0461), 20: (0.6127, 0.0048)},
    "second_only": {1: (0.6027, 0.0671), 5: (0.6049, 0.0138), 20: (0.6050, 0.0000)},
}


@pytest.mark.parametrize("mode", MODES)
def test_trajectories_match_the_table(mode):
    t, phi, theta = simsiam_toy(mode, 0.6, 0.1, t_max=20.0, dt=0.5)
    for time, (want_phi, want_theta) in TABLE[mode].items():
        k = int(np.argmin(np.abs(t - time)))
        assert t[k] == time
        assert abs(phi[k] - want_phi) < 1e-3 and abs(theta[k] - want_theta) < 1e-3


def test_field_by_finite_differences_of_the_loss():
    # the three modes are gradients of l = ½(φθ − θ)² with the target treated differently; check by
    # finite differences of l in φ, in the prediction's θ and in the target's θ
    phi, theta, h = 0.37, 0.81, 1e-6

    def loss(p, pred_theta, target_theta):
        return 0.5 * (p * pred_theta - target_theta) ** 2

    d_phi = (loss(phi + h, theta, theta) - loss(phi - h, theta, theta)) / (2 * h)
    d_pred = (loss(phi, theta + h, theta) - loss(phi, theta - h, theta)) / (2 * h)
    d_target = (loss(phi, theta, theta + h) - loss(phi, theta, theta - h)) / (2 * h)
    for mode, want_theta in (("stopgrad", -d_pred), ("full", -(d_pred + d_target)), ("second_only", -d_target)):
        dphi, dtheta = simsiam_field(mode, phi, theta)
        assert dphi == pytest.approx(-d_phi, abs=1e-8)
        assert dtheta == pytest.approx(want_theta, abs=1e-8)


@pytest.mark.parametrize("mode", MODES)
def test_conserved_quantities_do_not_drift(mode):
    _, phi, theta = simsiam_toy(mode, 0.6, 0.1, t_max=20.0, dt=0.05)
    c = conserved_quantity(mode, phi, theta)
    assert np.abs(c - c[0]).max() < 1e-8
    # not conserved by the other modes' flows (the test can fail)
    other = next(m for m in MODES if m != mode)
    c_other = conserved_quantity(other, phi, theta)
    assert np.abs(c_other - c_other[0]).max() > 1e-3


@pytest.mark.parametrize("mode", MODES)
def test_limits_and_plain_gradient_descent(mode):
    want = simsiam_limit(mode, 0.6, 0.1)
    _, phi, theta = simsiam_toy(mode, 0.6, 0.1, t_max=200.0, dt=0.5)
    assert abs(phi[-1] - want[0]) < 1e-6 and abs(theta[-1] - want[1]) < 1e-6
    _, phi, theta = simsiam_toy(mode, 0.6, 0.1, t_max=60.0, dt=1e-3, method="gd")
    assert abs(phi[-1] - want[0]) < 1e-2 and abs(theta[-1] - want[1]) < 1e-2


def test_hand_values_of_the_limits():
    assert simsiam_limit("stopgrad")[1] == pytest.approx(math.sqrt(0.65))
    assert simsiam_limit("full")[0] == pytest.approx(1 - math.sqrt(0.15))
    assert simsiam_limit("second_only")[0] == pytest.approx(0.605)


def test_stopgrad_limit_for_100_random_starts():
    rng = np.random.default_rng(0)
    for _ in range(100):
        phi0 = rng.uniform(0.05, 0.95)
        theta0 = rng.uniform(0.02, phi0)
        _, phi, theta = simsiam_toy("stopgrad", phi0, theta0, t_max=400.0, dt=400.0)
        assert abs(theta[-1] - math.sqrt(1 - (phi0 ** 2 - theta0 ** 2))) < 1e-5
        assert abs(phi[-1] - 1.0) < 1e-5


def test_errors_name_flags():
    with pytest.raises(ConfigError, match="--mode"):
        simsiam_toy("nope")
    with pytest.raises(ConfigError, match="--dt"):
        simsiam_toy(dt=0)
    with pytest.raises(ConfigError, match="--phi0"):
        simsiam_limit("stopgrad", 0.1, 0.5)


def test_plot_is_written(tmp_path):
    out = plot_simsiam(tmp_path / "simsiam.png", t_max=5.0)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _cos_grad(a, b):  # d cos(a, b) / d a, by hand
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(-1, keepdim=True) / (na * nb)
    return b / (na * nb) - cos * a / na ** 2


@pytest.mark.parametrize("stop_gradient", [True, False])
def test_simsiam_loss_value_and_gradients(stop_gradient):
    z1 = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    loss = SimSiamLoss(nn.Identity(), stop_gradient=stop_gradient)(z1, z2)
    cos = torch.nn.functional.cosine_similarity(z1, z2, dim=-1)
    assert loss.item() == pytest.approx(-cos.mean().item(), abs=1e-14)
    loss.backward()
    # each of the two terms gives -½ · (1/B) · ∂cos/∂(its prediction); without stop-gradient the target too
    factor = 0.5 if stop_gradient else 1.0
    want = -factor * _cos_grad(z1.detach(), z2.detach()) / 5
    assert torch.allclose(z1.grad, want, atol=1e-12)


def test_simsiam_loss_mse_and_predictor_on_a_sentence_encoder_shape():
    torch.manual_seed(0)
    loss_fn = SimSiamLoss(simsiam_predictor(16), distance="mse")
    z = torch.randn(8, 16, requires_grad=True)
    loss = loss_fn(z, z + 0.1 * torch.randn(8, 16))
    loss.backward()
    assert loss.item() > 0 and z.grad is not None
    assert all(p.grad is not None for p in loss_fn.predictor.parameters())
    with pytest.raises(ConfigError, match="--simsiam-distance"):
        SimSiamLoss(nn.Identity(), distance="l1")
    with pytest.raises(ConfigError):
        loss_fn(torch.randn(8, 16), torch.randn(8, 15))
