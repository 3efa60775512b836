"""SimSiam's toy dynamics: why stop-gradient keeps the encoder from collapsing.

Source: "从动力学角度看优化算法(六):为什么SimSiam不退化?", https://kexue.fm/archives/7980.

Su's scalar toy: encoder ``θ``, predictor ``φ``, loss ``l = ½(φθ − θ)²`` (the prediction ``φθ`` of the target
``θ``), ``r := φθ − θ``. Gradient flow in three modes:

* ``"stopgrad"`` (SimSiam, target ``sg(θ)``): ``φ' = −rθ``, ``θ' = −rφ``;
* ``"full"`` (no stop-gradient): ``φ' = −rθ``, ``θ' = −rφ + r``;
* ``"second_only"`` (only the target's gradient term): ``φ' = −rθ``, ``θ' = r``.

Conserved quantities (each mode's flow is tangent to the level sets): ``φ² − θ²`` (stop-gradient; so
``φ → 1``, ``θ → √(1 − (φ₀² − θ₀²))``: no collapse), ``(φ − 1)² − θ²`` (full gradient; ``θ → 0``, collapse,
``φ → 1 − √((φ₀−1)² − θ₀²)``) and ``φ + θ²/2`` (second term only; ``θ → 0``, ``φ → φ₀ + θ₀²/2``).
The SimSiam loss for real encoders is :class:`kexue.losses.simsiam.SimSiamLoss`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp

from kexue.errors import ConfigError

MODES = ("stopgrad", "full", "second_only")
METHODS = ("RK45", "DOP853", "gd")


def simsiam_field(mode: str, phi: float | np.ndarray, theta: float | np.ndarray) -> tuple:
    """The gradient-flow vector field ``(φ', θ')`` of ``mode`` at ``(φ, θ)`` (floats or arrays).

    Raises:
        ConfigError: unknown mode (names ``--mode``).
    """
    if mode not in MODES:
        raise ConfigError(f"--mode: expected one of {MODES}, got {mode!r}")
    r = phi * theta - theta
    dphi = -r * theta
    if mode == "stopgrad":
        dtheta = -r * phi
    elif mode == "full":
        dtheta = -r * phi + r
    else:
        dtheta = r
    return dphi, dtheta


def conserved_quantity(mode: str, phi: float | np.ndarray, theta: float | np.ndarray) -> float | np.ndarray:
    """The invariant of ``mode``'s flow: ``φ² − θ²``, ``(φ − 1)² − θ²`` or ``φ + θ²/2``."""
    if mode == "stopgrad":
        return phi * phi - theta * theta
    if mode == "full":
        return (phi - 1.0) ** 2 - theta * theta
    if mode == "second_only":
        return phi + 0.5 * theta * theta
    raise ConfigError(f"--mode: expected one of {MODES}, got {mode!r}")


def simsiam_limit(mode: str, phi0: float = 0.6, theta0: float = 0.1) -> tuple[float, float]:
    """The fixed point ``(φ∞, θ∞)`` the flow reaches from ``(φ₀, θ₀)``, from the conserved quantity.

    Valid for ``0 < θ₀ < φ₀ < 1`` (the article's regime; the stop-gradient limit needs ``φ₀² − θ₀² < 1``, the
    full-gradient one ``(φ₀ − 1)² > θ₀²``).

    Raises:
        ConfigError: a start outside that regime.
    """
    if not 0 < theta0 < phi0 < 1:
        raise ConfigError(f"--phi0/--theta0: the limits hold for 0 < theta0 < phi0 < 1, got ({phi0}, {theta0})")
    if mode == "stopgrad":
        return 1.0, math.sqrt(1.0 - (phi0 ** 2 - theta0 ** 2))
    if mode == "full":
        c = (phi0 - 1.0) ** 2 - theta0 ** 2
        if c <= 0:
            raise ConfigError(f"--phi0/--theta0: (phi0-1)^2 - theta0^2 = {c:g} <= 0; the full-gradient flow then "
                              "reaches phi = 1 with theta != 0 (no collapse)")
        return 1.0 - math.sqrt(c), 0.0
    if mode == "second_only":
        return phi0 + 0.5 * theta0 ** 2, 0.0
    raise ConfigError(f"--mode: expected one of {MODES}, got {mode!r}")


def simsiam_toy(mode: str = "stopgrad", phi0: float = 0.6, theta0: float = 0.1, t_max: float = 20.0,
                dt: float = 1e-2, method: str = "RK45", rtol: float = 1e-10,
                atol: float = 1e-12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integrate the toy dynamics of ``mode`` from ``(φ₀, θ₀)`` over ``[0, t_max]``.

    Args:
        mode: ``"stopgrad"``, ``"full"`` or ``"second_only"``.
        phi0, theta0: the start (article: 0.6, 0.1).
        t_max: end time.
        dt: spacing of the returned times; for ``method="gd"`` also the step of plain gradient descent
            (explicit Euler: ``x ← x + dt · field(x)``, i.e. learning rate ``dt``).
        method: a ``scipy.integrate.solve_ivp`` method (``"RK45"``, ``"DOP853"``) or ``"gd"``.
        rtol, atol: solver tolerances (solve_ivp only).
    Returns:
        ``(t, phi, theta)``: float64 arrays of shape ``[round(t_max/dt) + 1]``.
    Raises:
        ConfigError: unknown mode or method, ``t_max <= 0`` or ``dt <= 0`` (named as CLI flags).
    """
    if mode not in MODES:
        raise ConfigError(f"--mode: expected one of {MODES}, got {mode!r}")
    if method not in METHODS:
        raise ConfigError(f"--method: expected one of {METHODS}, got {method!r}")
    if not t_max > 0:
        raise ConfigError(f"--t-max: expected a positive time, got {t_max}")
    if not dt > 0:
        raise ConfigError(f"--dt: expected a positive step, got {dt}")
    steps = int(round(t_max / dt))
    t = np.linspace(0.0, steps * dt, steps + 1)
    if method == "gd":
        phi = np.empty(steps + 1)
        theta = np.empty(steps + 1)
        phi[0], theta[0] = phi0, theta0
        for k in range(steps):
            dphi, dtheta = simsiam_field(mode, phi[k], theta[k])
            phi[k + 1] = phi[k] + dt * dphi
            theta[k + 1] = theta[k] + dt * dtheta
        return t, phi, theta
    sol = solve_ivp(lambda _t, y: simsiam_field(mode, y[0], y[1]), (0.0, t[-1]), [phi0, theta0], method=method,
                    t_eval=t, rtol=rtol, atol=atol)
    if not sol.success:  # pragma: no cover - the field is smooth and bounded on the article's region
        raise ConfigError(f"solve_ivp failed: {sol.message}")
    return sol.t, sol.y[0], sol.y[1]


def plot_simsiam(path: str | Path, phi0: float = 0.6, theta0: float = 0.1, t_max: float = 20.0) -> Path:
    """Plot ``φ(t)`` and ``θ(t)`` of the three modes (the article's figures) to ``path`` (PNG); returns it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
    titles = {"stopgrad": "stop-gradient (SimSiam)", "full": "full gradient", "second_only": "second term only"}
    for ax, mode in zip(axes, MODES):
        t, phi, theta = simsiam_toy(mode, phi0, theta0, t_max)
        ax.plot(t, phi, label="φ (predictor)")
        ax.plot(t, theta, label="θ (encoder)")
        ax.set_title(titles[mode])
        ax.set_xlabel("t")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"l = ½(φθ − θ)², φ(0) = {phi0}, θ(0) = {theta0}  (kexue.fm/archives/7980)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
