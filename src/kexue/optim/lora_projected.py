"""LoRA as an optimizer: project the full gradient of each weight onto low-rank factors, step the factors, write
``W = W₀ + s·ΔW(A, B)`` back into the plain weight.

Source: Su Jianlin, "梯度视角下的LoRA:简介、分析、猜测及推广", 2023-04-17, https://kexue.fm/archives/9590
(spec training.md §6). In the article's convention (``Y = XW``, ``W ∈ R^{n×m}``; ``nn.Linear.weight`` is ``Wᵀ``) the
weight's full gradient ``G`` gives the factors' gradients ``s·G Bᵀ`` and ``s·Aᵀ G`` (product) or the block sums of
``G`` (additive), exactly those autograd gives :class:`kexue.adapters.lora_variants.LoRALinear`; any torch
optimizer then keeps moments only for the ``n×r`` and ``r×m`` factors.

Projections:

* ``"fixed"``: standard LoRA (``init="zero_B"``: ``A ~ N(0, 1/n)``, ``B = 0``; ``"symmetric"``: both drawn and
  ``W₀ = W − s·A₀B₀``). The trajectory equals that of the module form.
* ``"random"``: before every step ``A`` and ``B`` are redrawn with i.i.d. ``N(0, 1/(2r))`` entries and
  ``W₀ ← W − s·AB`` (the weight is unchanged by the draw). With plain SGD the increment is
  ``ΔW = −η s²(G BᵀB + AAᵀG) + O(η²)``; ``E[AAᵀ] = I_n/2`` and ``E[BᵀB] = I_m/2``, so for ``s = 1`` its expectation
  is the full gradient step ``−ηG`` (the article's ``N(0, 1)`` draws for ``r = 1`` give ``−2ηG``). The base
  optimizer's state for ``A``/``B`` persists across draws.
* ``"additive"``: ``ΔW = A·[I_r … I_r] + [I_r; …; I_r]·B`` from ``A = B = 0`` (``r`` divides ``n`` and ``m``).

Weights always hold plain values (``W₀ + s·ΔW``), so nothing needs merging at the end; :meth:`merge` re-bases
(``W₀ ← W``, fresh factors) and is what a checkpoint of the model alone already contains.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from kexue.errors import ConfigError

__all__ = ["LoRAProjectedOptimizer", "PROJECTIONS", "projected_gradients", "random_factor"]

PROJECTIONS = ("fixed", "random", "additive")


def random_factor(shape: Sequence[int], r: int, generator: torch.Generator | None = None,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A redrawn factor of the ``"random"`` projection: i.i.d. ``N(0, 1/(2r))`` entries of ``shape`` (CPU).

    For ``A`` of shape ``[n, r]``: ``E[AAᵀ] = I_n/2``; for ``B`` ``[r, m]``: ``E[BᵀB] = I_m/2`` (leading batch
    dimensions are allowed, for Monte-Carlo checks).
    """
    return torch.randn(*shape, generator=generator, dtype=dtype) * (2.0 * r) ** -0.5


def projected_gradients(g: torch.Tensor, a: torch.Tensor, b: torch.Tensor, parametrization: str = "product",
                        scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(∂L/∂A, ∂L/∂B)`` from the full gradient ``g = ∂L/∂W`` ``[n, m]`` (article orientation).

    Product: ``(s·G Bᵀ, s·Aᵀ G)``. Additive (``a [n, r]``, ``b [r, m]``): ``∂A[i, k] = s·Σ_j G[i, j·r + k]``,
    ``∂B[k, j] = s·Σ_i G[i·r + k, j]`` (for ``r = 1``: row sums and column sums of ``G``).
    """
    if parametrization == "product":
        return scale * g @ b.T, scale * a.T @ g
    n, m = g.shape
    r = a.shape[1]
    return scale * g.reshape(n, m // r, r).sum(1), scale * g.reshape(n // r, r, m).sum(0)


class LoRAProjectedOptimizer(torch.optim.Optimizer):
    """Train ``weights`` as ``W₀ + s·ΔW(A, B)`` by stepping owned factors with ``base_optimizer_cls`` (module doc).

    Args:
        base_optimizer_cls: a ``torch.optim.Optimizer`` class (SGD, Adam, AdamW, ...).
        weights: ``nn.Linear`` weights (``(m, n)`` parameters, ``requires_grad=True`` so that autograd fills their
            full gradient ``Gᵀ``), each given once.
        r: rank ≥ 1 (additive: divides both dimensions of every weight).
        projection: ``"fixed"`` | ``"random"`` | ``"additive"``.
        init: ``"zero_B"`` | ``"symmetric"`` (``"fixed"`` only; the others start from their own factors).
        scale: ``s``.
        other_params: parameters (or param-group dicts) the base optimizer trains directly (e.g. a task head).
        factor_options: extra options of the factors' param group (default ``{"weight_decay": 0.0}``: decay on
            redrawn or additive factors is no weight decay of ``W``).
        generator: torch generator of the draws (default: a new one seeded 0; its state is in ``state_dict``).
        **base_kwargs: the base optimizer's defaults (``lr``, ``betas``, ``momentum``, ...).

    ``param_groups`` and ``state`` are the base optimizer's (the factor group first), so learning-rate schedulers
    work unchanged; ``state_dict`` adds the factors, ``W₀`` and the generator state.

    Raises: ConfigError for a bad option, a weight that is not 2-D, given twice, or ``r`` not dividing it
    (additive).
    """

    def __init__(self, base_optimizer_cls: type[torch.optim.Optimizer], weights: Iterable[nn.Parameter],
                 r: int = 8, projection: str = "fixed", init: str = "zero_B", scale: float = 1.0,
                 other_params: Iterable[Any] = (), factor_options: dict[str, Any] | None = None,
                 generator: torch.Generator | None = None, **base_kwargs: Any) -> None:
        if projection not in PROJECTIONS:
            raise ConfigError(f"--lora-variant: projection expected one of {', '.join(PROJECTIONS)}, got "
                              f"{projection!r}")
        if init not in ("zero_B", "symmetric"):
            raise ConfigError(f"init: expected 'zero_B' or 'symmetric', got {init!r}")
        if int(r) != r or r < 1:
            raise ConfigError(f"--lora-rank: expected an integer >= 1, got {r}")
        self.weights: list[nn.Parameter] = list(weights)
        if not self.weights:
            raise ConfigError("LoRAProjectedOptimizer: no weights to adapt")
        if len({id(w) for w in self.weights}) != len(self.weights):
            raise ConfigError("LoRAProjectedOptimizer: a weight is given twice")
        self.r, self.projection, self.init, self.scale = int(r), projection, init, float(scale)
        self.parametrization = "additive" if projection == "additive" else "product"
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.factors: list[tuple[nn.Parameter, nn.Parameter]] = []
        self.w0: list[torch.Tensor] = []
        for w in self.weights:
            if w.dim() != 2:
                raise ConfigError(f"LoRAProjectedOptimizer: expected 2-D nn.Linear weights, got shape "
                                  f"{tuple(w.shape)}")
            m, n = w.shape
            if projection == "additive" and (n % self.r or m % self.r):
                raise ConfigError(f"--lora-rank {r}: the additive form needs r to divide {n} and {m}")
            a = nn.Parameter(torch.zeros(n, self.r, dtype=w.dtype, device=w.device))
            b = nn.Parameter(torch.zeros(self.r, m, dtype=w.dtype, device=w.device))
            self.factors.append((a, b))
            self.w0.append(w.detach().T.clone())
        if projection == "fixed":
            for i, (a, b) in enumerate(self.factors):
                n, m = a.shape[0], b.shape[1]
                a_new = self._randn(a.shape, a) / n ** 0.5
                b_new = self._randn(b.shape, b) / m ** 0.5 if init == "symmetric" else torch.zeros_like(b)
                self.set_factors(i, a_new, b_new)
        groups = [{"params": [p for ab in self.factors for p in ab], **(factor_options or {"weight_decay": 0.0})}]
        others = list(other_params)
        if others and isinstance(others[0], dict):
            groups += others
        elif others:
            groups.append({"params": others})
        self.base = base_optimizer_cls(groups, **base_kwargs)
        super().__init__([p for g in groups for p in g["params"]], dict(self.base.defaults))
        self.param_groups = self.base.param_groups
        self.state = self.base.state

    def _randn(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        return torch.randn(*shape, generator=self.generator, dtype=like.dtype).to(like.device)

    def _delta(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.parametrization == "product":
            return a @ b
        n, m, r = a.shape[0], b.shape[1], self.r
        eye = torch.eye(r, dtype=a.dtype, device=a.device)
        return a @ eye.repeat(1, m // r) + eye.repeat(n // r, 1) @ b

    @torch.no_grad()
    def set_factors(self, index: int, a: torch.Tensor, b: torch.Tensor) -> None:
        """Set weight ``index``'s factors to ``a [n, r]``, ``b [r, m]`` and re-base ``W₀ = W − s·ΔW(a, b)`` so the
        weight is unchanged."""
        fa, fb = self.factors[index]
        fa.copy_(a)
        fb.copy_(b)
        self.w0[index] = self.weights[index].detach().T - self.scale * self._delta(fa, fb)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Project each weight's gradient, step the base optimizer, write ``W₀ + s·ΔW`` into the weights.
        A weight without a gradient keeps its value (its factors get no gradient)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for i, (w, (a, b)) in enumerate(zip(self.weights, self.factors)):
            if w.grad is None:
                a.grad = b.grad = None
                continue
            if self.projection == "random":
                self.set_factors(i, random_factor(a.shape, self.r, self.generator, a.dtype).to(a.device),
                                 random_factor(b.shape, self.r, self.generator, b.dtype).to(b.device))
            ga, gb = projected_gradients(w.grad.T, a, b, self.parametrization, self.scale)
            a.grad, b.grad = ga.to(a.dtype), gb.to(b.dtype)
        self.base.step()
        for i, (w, (a, b)) in enumerate(zip(self.weights, self.factors)):
            if a.grad is not None:
                w.copy_((self.w0[i] + self.scale * self._delta(a, b)).T)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the weights' full gradients and the factors' and other parameters' gradients."""
        for w in self.weights:
            w.grad = None if set_to_none else (w.grad.zero_() if w.grad is not None else None)
        self.base.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def merge(self) -> None:
        """Re-base every weight: ``W₀ ← W`` and ``ΔW = 0`` (the weights already hold the merged values)."""
        for i, (a, b) in enumerate(self.factors):
            self.set_factors(i, a if self.parametrization == "product" else torch.zeros_like(a), torch.zeros_like(b))

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict plus ``"lora_projected"``: factors, ``W₀`` and the generator state."""
        sd = self.base.state_dict()
        sd["lora_projected"] = {"factors": [(a.detach().clone(), b.detach().clone()) for a, b in self.factors],
                                "w0": [w.clone() for w in self.w0], "generator": self.generator.get_state(),
                                "projection": self.projection, "r": self.r}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output. Raises ConfigError when it was saved with another projection or
        rank."""
        sd = dict(state_dict)
        extra = sd.pop("lora_projected")
        if extra["projection"] != self.projection or extra["r"] != self.r or len(extra["factors"]) != len(
                self.factors):
            raise ConfigError(f"optimizer state of projection {extra['projection']} r={extra['r']} does not fit "
                              f"--lora-variant projection {self.projection} r={self.r}")
        self.base.load_state_dict(sd)
        self.param_groups = self.base.param_groups
        self.state = self.base.state
        with torch.no_grad():
            for (a, b), (sa, sb) in zip(self.factors, extra["factors"]):
                a.copy_(sa)
                b.copy_(sb)
        self.w0 = [w.to(self.weights[i].device) for i, w in enumerate(extra["w0"])]
        self.generator.set_state(extra["generator"])
