"""LoRA in the convention of "梯度视角下的LoRA", with the article's own variants (symmetric initialisation, additive
factorisation); peft's standard LoRA stays in :mod:`kexue.adapters.lora`.

Source: Su Jianlin, "梯度视角下的LoRA:简介、分析、猜测及推广", 2023-04-17, https://kexue.fm/archives/9590
(spec training.md §6).

Convention. The article writes a layer as ``Y = XW`` with ``X ∈ R^{b×n}``, ``W ∈ R^{n×m}``: ``n`` is
``in_features`` and ``m`` is ``out_features``, so ``nn.Linear.weight`` (shape ``(m, n)``) is ``Wᵀ``. LoRA trains
``W = W₀ + s·ΔW`` with W₀ frozen:

* ``parametrization="product"``: ``ΔW = AB``, ``A ∈ R^{n×r}``, ``B ∈ R^{r×m}``; ``∂L/∂A = s·G Bᵀ``,
  ``∂L/∂B = s·Aᵀ G`` with ``G = ∂L/∂W = Xᵀ ∂L/∂Y``.
* ``parametrization="additive"``: ``ΔW = A·[I_r … I_r] + [I_r; …; I_r]·B`` (``r`` must divide ``n`` and ``m``;
  for ``r = 1``: ``A 1_{1×m} + 1_{n×1} B``); ``∂L/∂A`` sums ``G``'s column blocks, ``∂L/∂B`` its row blocks, and
  ``rank(ΔW) ≤ 2r`` for the same ``r(n + m)`` parameters as rank-r LoRA.

Initialisation: ``"zero_B"`` (product: ``A ~ N(0, 1/n)``, ``B = 0``; additive: both 0, the form being linear) or
``"symmetric"`` (both factors drawn, ``A ~ N(0, 1/n)``, ``B ~ N(0, 1/m)``, and ``W = W₀ − s·ΔW(A₀, B₀) + s·ΔW(A, B)``,
the article's proposal, so the start is still the frozen model). Either way the initial output equals the base's.

``compute="factored"`` (default) evaluates ``XW₀ + s·(XA)B`` and never forms the n×m gradient; ``"dense"`` forms
``X(W₀ + s·AB)``, which the article notes is slower than full fine-tuning (kept to check both give one gradient).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from kexue.errors import ConfigError

__all__ = ["LoRALinear", "apply_lora_variant", "merge_lora_variants", "lora_variant_parameters", "INITS",
           "PARAMETRIZATIONS", "block_ones"]

INITS = ("zero_B", "symmetric")
PARAMETRIZATIONS = ("product", "additive")
COMPUTES = ("factored", "dense")


def block_ones(r: int, count: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None
               ) -> torch.Tensor:
    """``[I_r … I_r]``: ``count`` identity blocks side by side, ``[r, r·count]`` (``r = 1``: a row of ones)."""
    return torch.eye(r, dtype=dtype, device=device).repeat(1, count)


class LoRALinear(nn.Module):
    """``y = x W₀ + b + s·x ΔW`` around a frozen ``nn.Linear`` (the article's ``W₀ + AB`` convention, module doc).

    Args:
        base: the ``nn.Linear`` to adapt; its weight and bias are frozen (``requires_grad=False``) and kept.
        r: rank ≥ 1 (additive: a divisor of both ``in_features`` and ``out_features``).
        init: ``"zero_B"`` | ``"symmetric"``.
        parametrization: ``"product"`` | ``"additive"``.
        scale: ``s`` (the article uses 1; peft's ``α/r``).
        compute: ``"factored"`` | ``"dense"``.
        generator: torch generator for the random factors (default: torch's global one).

    Attributes: ``A`` ``[n, r]`` and ``B`` ``[r, m]`` (trainable, base's dtype/device); for ``"symmetric"`` the
    buffers ``A0``, ``B0``.

    Forward: ``[..., n] -> [..., m]``. Raises ConfigError for a bad option, ``r`` or base.
    """

    def __init__(self, base: nn.Linear, r: int = 8, init: str = "zero_B", parametrization: str = "product",
                 scale: float = 1.0, compute: str = "factored", generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise ConfigError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if init not in INITS:
            raise ConfigError(f"--lora-variant init: expected one of {', '.join(INITS)}, got {init!r}")
        if parametrization not in PARAMETRIZATIONS:
            raise ConfigError(f"parametrization: expected one of {', '.join(PARAMETRIZATIONS)}, got "
                              f"{parametrization!r}")
        if compute not in COMPUTES:
            raise ConfigError(f"compute: expected one of {', '.join(COMPUTES)}, got {compute!r}")
        n, m = base.in_features, base.out_features
        if int(r) != r or r < 1:
            raise ConfigError(f"--lora-rank: expected an integer >= 1, got {r}")
        if parametrization == "additive" and (n % r or m % r):
            raise ConfigError(f"--lora-rank {r}: the additive form needs r to divide in_features {n} and "
                              f"out_features {m}")
        self.base, self.r, self.init, self.parametrization = base, int(r), init, parametrization
        self.scale, self.compute = float(scale), compute
        for p in base.parameters():
            p.requires_grad_(False)
        w = base.weight
        kw = {"dtype": w.dtype, "device": w.device}
        a = torch.randn(n, self.r, generator=generator, **kw) / n ** 0.5
        b = torch.randn(self.r, m, generator=generator, **kw) / m ** 0.5
        if init == "zero_B":
            b.zero_()
            if parametrization == "additive":
                a.zero_()
        self.A = nn.Parameter(a)
        self.B = nn.Parameter(b)
        if init == "symmetric":
            self.register_buffer("A0", a.clone())
            self.register_buffer("B0", b.clone())
        else:
            self.A0 = self.B0 = None

    @property
    def in_features(self) -> int:
        """``n``."""
        return self.base.in_features

    @property
    def out_features(self) -> int:
        """``m``."""
        return self.base.out_features

    def _delta(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.parametrization == "product":
            return a @ b
        n, m = self.in_features, self.out_features
        return a @ block_ones(self.r, m // self.r, a.dtype, a.device) + block_ones(self.r, n // self.r, b.dtype,
                                                                                     b.device).T @ b

    def delta_weight(self) -> torch.Tensor:
        """``s·(ΔW(A, B) − ΔW(A₀, B₀))`` ``[n, m]`` (the article's orientation; ``nn.Linear.weight`` gets its ``ᵀ``)."""
        delta = self._delta(self.A, self.B)
        if self.A0 is not None:
            delta = delta - self._delta(self.A0, self.B0)
        return self.scale * delta

    def _apply_factors(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.parametrization == "product":
            return (x @ a) @ b
        n, m, r = self.in_features, self.out_features, self.r
        left = (x @ a).repeat(*([1] * (x.dim() - 1)), m // r)           # (XA)[I_r … I_r]
        right = x.reshape(*x.shape[:-1], n // r, r).sum(-2) @ b         # (X[I_r; …; I_r])B
        return left + right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., n] -> [..., m]``."""
        if self.compute == "dense":
            weight = self.base.weight + self.delta_weight().T
            return nn.functional.linear(x, weight, self.base.bias)
        delta = self._apply_factors(x, self.A, self.B)
        if self.A0 is not None:
            delta = delta - self._apply_factors(x, self.A0, self.B0)
        return self.base(x) + self.scale * delta

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` with ``weight = W₀ᵀ + s·ΔWᵀ`` (same bias), computing the same function."""
        out = nn.Linear(self.in_features, self.out_features, bias=self.base.bias is not None,
                        dtype=self.base.weight.dtype, device=self.base.weight.device)
        out.weight.copy_(self.base.weight + self.delta_weight().T)
        if self.base.bias is not None:
            out.bias.copy_(self.base.bias)
        return out

    def extra_repr(self) -> str:
        return (f"n={self.in_features}, m={self.out_features}, r={self.r}, init={self.init}, "
                f"parametrization={self.parametrization}, scale={self.scale:g}")


def _matches(name: str, targets: Sequence[str]) -> bool:
    return any(name == t or name.endswith("." + t) for t in targets)


def apply_lora_variant(model: nn.Module, targets: Sequence[str], r: int = 8, init: str = "zero_B",
                       parametrization: str = "product", scale: float = 1.0, freeze: bool = True,
                       generator: torch.Generator | None = None) -> list[str]:
    """Replace every ``nn.Linear`` of ``model`` whose name is (or ends with ``.``) one of ``targets`` by a
    :class:`LoRALinear` (in place); with ``freeze`` every other parameter of ``model`` is frozen.

    Returns: the replaced module names. Raises ConfigError when no ``nn.Linear`` matches ``targets``.
    """
    names = [n for n, mod in model.named_modules() if isinstance(mod, nn.Linear) and _matches(n, targets)]
    if not names:
        raise ConfigError(f"--lora-target {list(targets)}: no nn.Linear of {type(model).__name__} has such a name")
    if freeze:
        for p in model.parameters():
            p.requires_grad_(False)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), r, init, parametrization, scale,
                                          generator=generator))
    return names


def merge_lora_variants(model: nn.Module) -> nn.Module:
    """Replace every :class:`LoRALinear` inside ``model`` by its :meth:`LoRALinear.merged` ``nn.Linear``, in place;
    returns ``model`` (a bare LoRALinear is returned merged)."""
    if isinstance(model, LoRALinear):
        return model.merged()
    for name, mod in list(model.named_modules()):
        if isinstance(mod, LoRALinear):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, mod.merged())
    return model


def lora_variant_parameters(model: nn.Module) -> int:
    """Scalar count of the trainable ``A``, ``B`` of every :class:`LoRALinear` in ``model``."""
    return sum(m.A.numel() + m.B.numel() for m in model.modules() if isinstance(m, LoRALinear))
