"""Loss-weighting schemes for multi-task learning, ``L = Σ αᵢ Lᵢ`` (Su's multi-task post I, "以损失之名").

| scheme | total loss | invariance |
|---|---|---|
| ``"equal"`` | ``(1/n) Σ Lᵢ`` | none |
| ``"initial"`` | ``Σ Lᵢ / Lᵢ^init`` (given, or the first observed losses) | scale |
| ``"prior"`` | ``Σ Lᵢ / Lᵢ^prior`` (e.g. label entropy / variance) | scale |
| ``"realtime"`` | ``Σ Lᵢ / sg(Lᵢ)``, gradient ``∇ Σ log Lᵢ`` | scale |
| ``"generalized_mean"`` | ``((1/n) Σ Lᵢ^γ)^{1/γ}`` (γ→0: geometric) | one hyper-parameter |
| ``"grad_norm"`` | ``Σ Lᵢ / sg(‖∇_θ Lᵢ‖)`` over shared θ | scale + shift |

Uncertainty weighting (Kendall et al. 2018) is **not** from these posts; :class:`UncertaintyWeighting` ships it,
labelled as external.

Source: Su Jianlin, "多任务学习漫谈(一):以损失之名" (2022-01-18), https://kexue.fm/archives/8870
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from kexue.errors import ConfigError

__all__ = ["MultiTaskLoss", "generalized_mean", "UncertaintyWeighting", "softmax_initial_loss",
           "classification_prior_loss", "regression_prior_loss", "SCHEMES"]

SCHEMES = ("equal", "initial", "prior", "realtime", "generalized_mean", "grad_norm")
Losses = Mapping[str, torch.Tensor] | Sequence[torch.Tensor]


def softmax_initial_loss(num_classes: int) -> float:
    """Theoretical initial loss of K-class softmax cross-entropy, ``log K`` (nats). Source: archives/8870."""
    if num_classes < 2:
        raise ConfigError(f"num_classes must be >= 2, got {num_classes}")
    return math.log(num_classes)


def classification_prior_loss(class_frequencies: Sequence[float] | torch.Tensor) -> float:
    """Prior loss of a classifier that only knows the label frequencies p: entropy ``-Σ p_k log p_k`` (nats).

    Frequencies are normalised to sum to 1. Raises ConfigError for negative or all-zero frequencies.
    Source: https://kexue.fm/archives/8870
    """
    p = torch.as_tensor(class_frequencies, dtype=torch.float64)
    if (p < 0).any() or p.sum() <= 0:
        raise ConfigError("class_frequencies must be non-negative and not all zero")
    p = p / p.sum()
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def regression_prior_loss(labels: torch.Tensor) -> float:
    """Prior loss of L2 regression predicting the label mean μ: ``E‖y - μ‖²`` (labels ``[n]`` or ``[n, d]``).

    Source: https://kexue.fm/archives/8870
    """
    y = torch.as_tensor(labels, dtype=torch.float64)
    y = y.reshape(y.shape[0], -1)
    return float(((y - y.mean(0)) ** 2).sum(1).mean())


def generalized_mean(losses: torch.Tensor | Sequence[torch.Tensor], gamma: float, eps: float = 0.0) -> torch.Tensor:
    """Power mean ``((1/n) Σ Lᵢ^γ)^{1/γ}``; γ=0 is the geometric mean ``exp(mean log L)``.

    γ=1 arithmetic, γ=-1 harmonic, γ→±∞ max/min; non-decreasing in γ. Losses must be positive for γ ≤ 0
    (``eps`` is added first). Raises ConfigError on non-positive losses when γ ≤ 0. Source: archives/8870
    """
    x = losses if isinstance(losses, torch.Tensor) else torch.stack(list(losses))
    x = x + eps
    if gamma <= 0 and bool((x <= 0).any()):
        raise ConfigError(f"generalized_mean with gamma={gamma} needs positive losses")
    if gamma == 0:
        return torch.exp(torch.log(x).mean())
    # log-sum-exp form keeps large |γ| finite: (mean x^γ)^{1/γ} = exp((logsumexp(γ log x) - log n)/γ)
    if bool((x > 0).all()):
        return torch.exp((torch.logsumexp(gamma * torch.log(x), 0) - math.log(x.numel())) / gamma)
    return (x ** gamma).mean() ** (1.0 / gamma)


def _as_named(losses: Losses) -> tuple[list[str], list[torch.Tensor]]:
    if isinstance(losses, Mapping):
        names, values = list(losses.keys()), list(losses.values())
    else:
        values = list(losses)
        names = [str(i) for i in range(len(values))]
    if not values:
        raise ConfigError("no task losses given")
    for n, v in zip(names, values):
        if v.dim() != 0:
            raise ConfigError(f"task loss {n!r} must be a scalar, got shape {tuple(v.shape)}")
    return names, values


class MultiTaskLoss:
    """Combine per-task losses into one scalar by one of Su's schemes (see the module table).

    Args:
        scheme: one of :data:`SCHEMES`.
        gamma: exponent for ``"generalized_mean"``.
        init_losses: ``{task: L_init}`` (or a sequence) for ``"initial"``; None = record the first call's losses.
        prior_losses: ``{task: L_prior}`` for ``"prior"`` (see :func:`classification_prior_loss`).
        shared_params: parameters whose gradient norm weights each task, for ``"grad_norm"``.
        eps: lower bound of every denominator (guards near-zero losses / gradient norms).

    Call with a dict ``{task: scalar loss}`` or a sequence; returns the scalar to back-propagate. Task names
    (dict keys or positions "0", "1", ...) must be the same on every call. ``last_weights`` holds the effective
    weights ``αᵢ`` (floats) of the last call. ``state_dict()`` / ``load_state_dict()`` carry recorded init losses.
    Raises ConfigError on unknown scheme, missing options or tasks. Source: https://kexue.fm/archives/8870
    """

    def __init__(self, scheme: str = "realtime", gamma: float | None = None,
                 init_losses: Mapping[str, float] | Sequence[float] | None = None,
                 prior_losses: Mapping[str, float] | Sequence[float] | None = None,
                 shared_params: Iterable[torch.Tensor] | None = None, eps: float = 1e-8) -> None:
        if scheme not in SCHEMES:
            raise ConfigError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        if scheme == "generalized_mean" and gamma is None:
            raise ConfigError("scheme 'generalized_mean' needs gamma")
        if scheme == "prior" and prior_losses is None:
            raise ConfigError("scheme 'prior' needs prior_losses")
        self.shared_params = [p for p in (shared_params or []) if p.requires_grad]
        if scheme == "grad_norm" and not self.shared_params:
            raise ConfigError("scheme 'grad_norm' needs shared_params that require grad")
        self.scheme, self.gamma, self.eps = scheme, gamma, eps
        self.init_losses = self._named_floats(init_losses)
        self.prior_losses = self._named_floats(prior_losses)
        self.last_weights: dict[str, float] = {}

    @staticmethod
    def _named_floats(values: Mapping[str, float] | Sequence[float] | None) -> dict[str, float] | None:
        if values is None:
            return None
        if isinstance(values, Mapping):
            return {str(k): float(v) for k, v in values.items()}
        return {str(i): float(v) for i, v in enumerate(values)}

    @staticmethod
    def _lookup(table: dict[str, float], names: list[str], what: str) -> list[float]:
        missing = [n for n in names if n not in table]
        if missing:
            raise ConfigError(f"{what} has no value for task(s) {missing}")
        return [table[n] for n in names]

    def __call__(self, losses: Losses) -> torch.Tensor:
        names, values = _as_named(losses)
        n = len(values)
        if self.scheme == "equal":
            weights = [1.0 / n] * n
        elif self.scheme == "initial":
            if self.init_losses is None:
                self.init_losses = {k: float(v.detach()) for k, v in zip(names, values)}
            weights = [1.0 / max(d, self.eps) for d in self._lookup(self.init_losses, names, "init_losses")]
        elif self.scheme == "prior":
            weights = [1.0 / max(d, self.eps) for d in self._lookup(self.prior_losses, names, "prior_losses")]
        elif self.scheme == "realtime":  # each term is exactly 1 in value (x / x), gradient ∇Lᵢ / Lᵢ
            terms = [v / v.detach().clamp_min(self.eps) for v in values]
            self.last_weights = {k: float(1.0 / v.detach().clamp_min(self.eps)) for k, v in zip(names, values)}
            return sum(terms)
        elif self.scheme == "grad_norm":
            weights = []
            for v in values:
                grads = torch.autograd.grad(v, self.shared_params, retain_graph=True, allow_unused=True)
                sq = sum(float((g.detach() ** 2).sum()) for g in grads if g is not None)
                weights.append(1.0 / max(math.sqrt(sq), self.eps))
        else:
            total = generalized_mean(torch.stack(values), float(self.gamma))
            self.last_weights = {}
            return total
        self.last_weights = dict(zip(names, weights))
        return sum(w * v for w, v in zip(weights, values))

    def state_dict(self) -> dict[str, Any]:
        """The recorded/initial losses (plain floats)."""
        return {"scheme": self.scheme, "init_losses": self.init_losses}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore recorded init losses; raises ConfigError on a scheme mismatch."""
        if state.get("scheme") != self.scheme:
            raise ConfigError(f"state is for scheme {state.get('scheme')!r}, this loss uses {self.scheme!r}")
        self.init_losses = None if state.get("init_losses") is None else dict(state["init_losses"])


class UncertaintyWeighting(nn.Module):
    """Homoscedastic-uncertainty weighting, ``Σ Lᵢ/(2σᵢ²) + log σᵢ`` with learnable ``log σᵢ`` (init 0).

    **Not from Su's multi-task posts** (they do not discuss it): Kendall, Gal & Cipolla, "Multi-Task Learning Using
    Uncertainty to Weigh Losses", CVPR 2018, arXiv 1705.07115. Give its parameters to the optimizer.

    Args: tasks: the task names (the keys of the loss dict; for sequences use ``["0", "1", ...]``).
    Forward: ``{task: scalar}`` or a sequence → scalar. Raises ConfigError on unknown / missing tasks.
    """

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        self.tasks = [str(t) for t in tasks]
        self.log_sigma = nn.Parameter(torch.zeros(len(self.tasks)))

    def forward(self, losses: Losses) -> torch.Tensor:
        names, values = _as_named(losses)
        if sorted(names) != sorted(self.tasks):
            raise ConfigError(f"UncertaintyWeighting expects tasks {self.tasks}, got {names}")
        total = 0.0
        for name, v in zip(names, values):
            s = self.log_sigma[self.tasks.index(name)]
            total = total + 0.5 * torch.exp(-2 * s) * v + s
        return total
