"""Gradient accumulation hidden in the momentum buffers (SGD with momentum, Adam / AdamW).

Classic gradient accumulation keeps a model-sized gradient buffer. For EMA-style optimizers the accumulation can
live in the moment buffers instead: decay the moments only on the first micro-step of each ``k``-step cycle, add
every micro-gradient with weight ``(1 - beta) / k`` and move the parameters only on every ``k``-th call. This is
exact for SGD with momentum and for Adam's first moment, and approximate for Adam's second moment ("mean of the
squares" replaces "square of the mean"; by Jensen the former is never smaller).

Source: Su Jianlin, "隐藏在动量中的梯度累积:少更新几步,效果反而更好?" (2021-08-24), https://kexue.fm/archives/8634

Usage: call ``step()`` and ``zero_grad()`` on **every** micro-batch; ``is_update_step`` tells whether the last call
moved the parameters. Express learning-rate schedules in micro-steps (or index them by ``t // k``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer

from kexue.errors import ConfigError

__all__ = ["AccumSGDM", "AccumAdam", "AccumAdamW", "beta_tilde"]

_MODES = ("exact", "sparse_update", "beta_tilde")


def beta_tilde(beta: float, k: int) -> float:
    """The "no-code" momentum ``β̃ = 1 - (1 - β)/k`` whose ``k``-th power approximates ``β``.

    Running an EMA with ``β̃`` for ``k`` micro-steps gives ``β̃^k m + (1-β̃) Σ β̃^{i-1} g_i ≈ β m + (1-β) mean(g)``.
    Example: ``beta_tilde(0.9, 4) = 0.975`` and ``0.975**4 ≈ 0.90369``.

    Source: https://kexue.fm/archives/8634. Raises ConfigError for β outside [0, 1) or k < 1.
    """
    if not 0.0 <= beta < 1.0:
        raise ConfigError(f"beta must be in [0, 1), got {beta}")
    if int(k) != k or k < 1:
        raise ConfigError(f"accumulation_steps must be a positive integer, got {k}")
    return 1.0 - (1.0 - beta) / k


_MISSING = ("skip", "zero")


def _check_common(lr: float, accumulation_steps: int, mode: str, missing_grad: str = "skip") -> None:
    if missing_grad not in _MISSING:
        raise ConfigError(f"missing_grad must be one of {_MISSING}, got {missing_grad!r}")
    if lr < 0.0:
        raise ConfigError(f"lr must be >= 0, got {lr}")
    if int(accumulation_steps) != accumulation_steps or accumulation_steps < 1:
        raise ConfigError(f"accumulation_steps must be a positive integer, got {accumulation_steps}")
    if mode not in _MODES:
        raise ConfigError(f"mode must be one of {_MODES}, got {mode!r}")


class _AccumBase(Optimizer):
    """Shared micro-step bookkeeping: a per-group micro-step counter ``group["micro_step"]``."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        super().__init__(params, defaults)
        self._is_update_step = False

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; its micro-step counter starts aligned with the existing groups."""
        existing = [g["micro_step"] for g in getattr(self, "param_groups", []) if "micro_step" in g]
        param_group.setdefault("micro_step", existing[0] if existing else 0)
        super().add_param_group(param_group)

    @property
    def is_update_step(self) -> bool:
        """Whether the last ``step()`` call moved the parameters (``t ≡ 0 mod k``)."""
        return self._is_update_step

    @staticmethod
    def _micro_grads(group: dict[str, Any], state: Any) -> Iterable[tuple[torch.Tensor, torch.Tensor, bool]]:
        """Yield ``(param, grad, first_in_cycle)`` for the parameters that take part in this micro-step.

        ``missing_grad="skip"`` (default, torch.optim's rule): a parameter whose ``.grad`` is None is left out
        of this micro-step; within a cycle its missing micro-gradients count as zero (classic accumulation sums
        the ``.grad`` that exist), and a cycle without any gradient leaves it untouched: no moment decay, no
        update, no step count, no weight decay. ``missing_grad="zero"`` (the behaviour before the fix): a
        parameter that already has state and no ``.grad`` gets a zero gradient, so its moments decay and it
        keeps moving on its momentum. Parameters never seen with a gradient are skipped in both.

        ``first_in_cycle`` is True on the parameter's first gradient of the current ``k``-step cycle (when its
        moments are decayed); ``state[p]["cycle"]`` records that cycle's index. The micro-step counter lives in
        the group, so every parameter's cycle stays aligned whatever gradients are missing.
        """
        t, k = group["micro_step"], group["accumulation_steps"]
        cycle = (t - 1) // k
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                if group["missing_grad"] == "skip" or len(state[p]) == 0:
                    continue
                grad = torch.zeros_like(p)
            elif grad.is_sparse:
                raise ConfigError("sparse gradients are not supported by the accumulating optimizers")
            st = state[p]
            # a state saved before the cycle index existed: its moments were decayed in the last step's cycle
            last = st.setdefault("cycle", (t - 2) // k) if len(st) else -1
            if len(st):
                st["cycle"] = cycle
            yield p, grad, last != cycle

    @staticmethod
    def _to_update(group: dict[str, Any], state: Any) -> Iterable[torch.Tensor]:
        """Parameters that received a gradient in the cycle that ends at this micro-step."""
        cycle = (group["micro_step"] - 1) // group["accumulation_steps"]
        return [p for p in group["params"] if state[p].get("cycle") == cycle]


class AccumSGDM(_AccumBase):
    """SGD with (EMA-form) momentum and gradient accumulation built into the momentum buffer.

    Exact mode (per parameter, ``t`` = micro-step, ``χ_{t/k} = 1`` iff ``t ≡ 0 (mod k)``)::

        m_t = [1 - (1-β)·χ_{(t-1)/k}]·m_{t-1} + ((1-β)/k)·g_t
        θ_t = θ_{t-1} - χ_{t/k}·lr·m_t

    With ``k = 1`` this is ``torch.optim.SGD(lr=lr·(1-β), momentum=β, dampening=0)`` (torch's buffer is ``m/(1-β)``);
    with ``k > 1`` it equals averaging ``k`` micro-gradients and taking one EMA-momentum step. Other modes:
    ``"sparse_update"`` — plain EMA every micro-step, θ moved only every k-th call (Su's "point 2");
    ``"beta_tilde"`` — EMA every micro-step with ``β̃ = 1-(1-β)/k`` and θ moved every k-th call (Su's no-code recipe).

    Args:
        params: iterable of tensors or param-group dicts (torch.optim convention).
        lr: step size α (applied to the EMA momentum, so the effective SGD lr is ``α(1-β)``).
        momentum: β in [0, 1).
        accumulation_steps: k ≥ 1 micro-steps per real update.
        mode: ``"exact"`` | ``"sparse_update"`` | ``"beta_tilde"``.
        weight_decay: L2 coefficient added to the gradient (``g + wd·θ``), as in torch's SGD.
        missing_grad: ``"skip"`` (default, as torch.optim: a parameter whose ``.grad`` is None on a micro-step
            contributes nothing to it, and one without any gradient in a cycle is not touched) or ``"zero"``
            (the earlier behaviour: treat it as a zero gradient, so it keeps moving on its momentum).

    State per parameter: ``momentum_buffer`` (no gradient cache) and the integer ``cycle`` of its last gradient;
    the micro-step counter lives in the group.
    Raises ConfigError for invalid options. Source: https://kexue.fm/archives/8634
    """

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.9, accumulation_steps: int = 1,
                 mode: str = "exact", weight_decay: float = 0.0, missing_grad: str = "skip") -> None:
        _check_common(lr, accumulation_steps, mode, missing_grad)
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0.0:
            raise ConfigError(f"weight_decay must be >= 0, got {weight_decay}")
        defaults = dict(lr=lr, momentum=momentum, accumulation_steps=int(accumulation_steps), mode=mode,
                        weight_decay=weight_decay, missing_grad=missing_grad)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One micro-step; moves the parameters only when the micro-step count is a multiple of k."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        any_update = False
        for group in self.param_groups:
            k, beta, mode = group["accumulation_steps"], group["momentum"], group["mode"]
            group.setdefault("missing_grad", "skip")
            group["micro_step"] += 1
            t = group["micro_step"]
            update = t % k == 0
            any_update = any_update or update
            for p, g, first in self._micro_grads(group, self.state):
                state = self.state[p]
                if len(state) == 0:
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["cycle"] = (t - 1) // k
                m = state["momentum_buffer"]
                if group["weight_decay"] != 0.0:
                    g = g.add(p, alpha=group["weight_decay"])
                if mode == "exact":
                    if first:
                        m.mul_(beta)
                    m.add_(g, alpha=(1.0 - beta) / k)
                else:
                    b = beta if mode == "sparse_update" else beta_tilde(beta, k)
                    m.mul_(b).add_(g, alpha=1.0 - b)
            if update:
                for p in self._to_update(group, self.state):
                    p.add_(self.state[p]["momentum_buffer"], alpha=-group["lr"])
        self._is_update_step = any_update
        return loss


class AccumAdam(_AccumBase):
    """Adam with gradient accumulation built into its moments (first moment exact, second approximate).

    Exact mode (``t`` = micro-step, ``n = t/k`` = real updates so far)::

        m_t = [1 - (1-β1)χ_{(t-1)/k}] m_{t-1} + ((1-β1)/k) g_t
        v_t = [1 - (1-β2)χ_{(t-1)/k}] v_{t-1} + ((1-β2)/k) g_t²
        θ_t = θ_{t-1} - χ_{t/k}·lr·m̂/(sqrt(v̂) + ε)        (eps_mode="outside", torch's Adam)
                                  ·m̂/sqrt(v̂ + ε)          (eps_mode="inside", Su's formula)

    with ``m̂ = m/(1-β1^n)``, ``v̂ = v/(1-β2^n)``. With k=1 and ``eps_mode="outside"`` this is ``torch.optim.Adam``
    (or ``AdamW`` when ``decoupled_weight_decay=True``). Decoupled weight decay (``θ ← θ(1 - lr·wd)``) is gated by
    χ like the update; coupled weight decay adds ``wd·θ`` to every micro-gradient. Modes ``"sparse_update"`` and
    ``"beta_tilde"`` as in :class:`AccumSGDM` (bias correction then uses the micro-step count).

    Args:
        params: iterable of tensors or param-group dicts.
        lr: learning rate. betas: (β1, β2). eps: ε. weight_decay: coefficient.
        accumulation_steps: k ≥ 1. mode: ``"exact"`` | ``"sparse_update"`` | ``"beta_tilde"``.
        eps_mode: ``"outside"`` | ``"inside"``. decoupled_weight_decay: AdamW-style decay if True.
        missing_grad: ``"skip"`` (default, torch.optim's rule: with k=1 a parameter whose ``.grad`` is None is
            not touched, exactly as ``torch.optim.Adam``; with k>1 its missing micro-gradients count as zero and
            a cycle without any gradient leaves it, its moments and its step count untouched) or ``"zero"`` (the
            earlier behaviour: a zero gradient, so the moments decay and it keeps moving on its momentum).

    State per parameter: ``step`` (its real updates, float tensor; the bias correction of ``"exact"`` uses it),
    ``exp_avg``, ``exp_avg_sq`` and the integer ``cycle`` of its last gradient — no gradient cache.
    Raises ConfigError for invalid options. Source: https://kexue.fm/archives/8634
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, accumulation_steps: int = 1, mode: str = "exact",
                 eps_mode: str = "outside", decoupled_weight_decay: bool = False,
                 missing_grad: str = "skip") -> None:
        _check_common(lr, accumulation_steps, mode, missing_grad)
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ConfigError(f"betas must be in [0, 1), got {betas}")
        if eps < 0.0 or weight_decay < 0.0:
            raise ConfigError(f"eps and weight_decay must be >= 0, got eps={eps}, weight_decay={weight_decay}")
        if eps_mode not in ("outside", "inside"):
            raise ConfigError(f"eps_mode must be 'outside' or 'inside', got {eps_mode!r}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        accumulation_steps=int(accumulation_steps), mode=mode, eps_mode=eps_mode,
                        decoupled_weight_decay=decoupled_weight_decay, missing_grad=missing_grad)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One micro-step; moves the parameters only when the micro-step count is a multiple of k."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        any_update = False
        for group in self.param_groups:
            k, mode = group["accumulation_steps"], group["mode"]
            beta1, beta2 = group["betas"]
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            group.setdefault("missing_grad", "skip")
            group["micro_step"] += 1
            t = group["micro_step"]
            update = t % k == 0
            any_update = any_update or update
            for p, g, first in self._micro_grads(group, self.state):
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = torch.tensor(0.0, dtype=torch.float64)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["cycle"] = (t - 1) // k
                m, v = state["exp_avg"], state["exp_avg_sq"]
                if wd != 0.0 and not group["decoupled_weight_decay"]:
                    g = g.add(p, alpha=wd)
                if mode == "exact":
                    if first:
                        m.mul_(beta1)
                        v.mul_(beta2)
                    m.add_(g, alpha=(1.0 - beta1) / k)
                    v.addcmul_(g, g, value=(1.0 - beta2) / k)
                else:
                    b1, b2 = (beta1, beta2) if mode == "sparse_update" else (beta_tilde(beta1, k),
                                                                              beta_tilde(beta2, k))
                    m.lerp_(g, 1.0 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
            if not update:
                continue
            for p in self._to_update(group, self.state):
                state = self.state[p]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                if wd != 0.0 and group["decoupled_weight_decay"]:
                    p.mul_(1.0 - lr * wd)
                if mode == "exact":
                    n, b1, b2 = float(state["step"]), beta1, beta2
                elif mode == "sparse_update":
                    n, b1, b2 = float(t), beta1, beta2
                else:
                    n, b1, b2 = float(t), beta_tilde(beta1, k), beta_tilde(beta2, k)
                bias1, bias2 = 1.0 - b1 ** n, 1.0 - b2 ** n
                step_size = lr / bias1
                if group["eps_mode"] == "outside":
                    denom = (v.sqrt() / math.sqrt(bias2)).add_(eps)
                else:
                    denom = (v / bias2).add_(eps).sqrt_()
                p.addcdiv_(m, denom, value=-step_size)
        self._is_update_step = any_update
        return loss


class AccumAdamW(AccumAdam):
    """:class:`AccumAdam` with decoupled weight decay (default 0.01, torch.optim.AdamW's default).

    Source: https://kexue.fm/archives/8634; decoupled decay: Loshchilov & Hutter, arXiv 1711.05101.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, accumulation_steps: int = 1, mode: str = "exact",
                 eps_mode: str = "outside", missing_grad: str = "skip") -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         accumulation_steps=accumulation_steps, mode=mode, eps_mode=eps_mode,
                         decoupled_weight_decay=True, missing_grad=missing_grad)
