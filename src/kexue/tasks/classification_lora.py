"""``kexue train classify --lora-variant``: the LoRA forms of "梯度视角下的LoRA" (https://kexue.fm/archives/9590) on
the classifier's encoder; ``--lora-rank`` alone stays peft's standard LoRA.

Module forms (:class:`kexue.adapters.lora_variants.LoRALinear` replaces each target ``nn.Linear``, the encoder is
otherwise frozen, the head trains): ``zero-b`` (``W₀ + AB``, ``B = 0``), ``symmetric`` (``W₀ − A₀B₀ + AB``), ``additive``
(``W₀ + A[I…I] + [I;…;I]B``). Optimizer forms (:class:`kexue.optim.LoRAProjectedOptimizer` over AdamW; the target
weights keep their full gradients and stay plain ``nn.Linear``): ``fixed-projection``, ``random-projection`` (factors
redrawn every step), ``additive-projection``. All have ``r(n + m)`` factor parameters per target weight and scale
``s = --lora-alpha / r`` (default 2, as peft's default alpha = 2r).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from kexue.adapters.lora_variants import apply_lora_variant, lora_variant_parameters
from kexue.errors import ConfigError
from kexue.optim.lora_projected import LoRAProjectedOptimizer
from kexue.train.technique_hooks import parameter_groups

__all__ = ["LORA_VARIANTS", "MODULE_VARIANTS", "PROJECTION_VARIANTS", "check_lora_variant", "apply_variant",
           "projected_factory"]

#: ``--lora-variant`` name -> (init, parametrization) of the module forms
MODULE_VARIANTS = {"zero-b": ("zero_B", "product"), "symmetric": ("symmetric", "product"),
                   "additive": ("zero_B", "additive")}
#: ``--lora-variant`` name -> projection of the optimizer forms
PROJECTION_VARIANTS = {"fixed-projection": "fixed", "random-projection": "random",
                       "additive-projection": "additive"}
LORA_VARIANTS = (*MODULE_VARIANTS, *PROJECTION_VARIANTS)


def check_lora_variant(variant: str | None, rank: int | None, optimizer: str, ladder_side: bool) -> None:
    """Refuse an unknown ``--lora-variant``, one without ``--lora-rank``, with ``--ladder-side``, or an optimizer
    form with an ``--optimizer`` other than adamw. Raises ConfigError."""
    if variant is None:
        return
    if variant not in LORA_VARIANTS:
        raise ConfigError(f"--lora-variant: expected one of {', '.join(LORA_VARIANTS)}, got {variant!r}")
    if rank is None:
        raise ConfigError(f"--lora-variant {variant} needs --lora-rank R")
    if ladder_side:
        raise ConfigError("--lora-variant and --ladder-side are exclusive")
    if variant in PROJECTION_VARIANTS and optimizer != "adamw":
        raise ConfigError(f"--lora-variant {variant} steps its factors with AdamW; it cannot be combined with "
                          f"--optimizer {optimizer}")


def _scale(rank: int, alpha: float | None) -> float:
    return 2.0 if alpha is None else float(alpha) / rank


def _target_weights(encoder: nn.Module, targets: tuple[str, ...]) -> list[nn.Parameter]:
    found = [m.weight for n, m in encoder.named_modules() if isinstance(m, nn.Linear)
             and any(n == t or n.endswith("." + t) for t in targets)]
    if not found:
        raise ConfigError(f"--lora-target {list(targets)}: no nn.Linear of the encoder has such a name")
    return found


def apply_variant(model: nn.Module, variant: str, rank: int, targets: tuple[str, ...], alpha: float | None,
                  seed: int = 0) -> dict[str, Any]:
    """Put ``variant`` on ``model.encoder`` (in place): module forms replace the targets, optimizer forms freeze all
    but the targets' weights. Returns the record ``{"variant", "rank", "scale", "factor_parameters"}``.
    Raises ConfigError for targets that match nothing or a rank that does not divide them (additive forms)."""
    encoder = model.encoder
    scale = _scale(rank, alpha)
    if variant in MODULE_VARIANTS:
        init, parametrization = MODULE_VARIANTS[variant]
        apply_lora_variant(encoder, targets, rank, init, parametrization, scale,
                           generator=torch.Generator().manual_seed(seed))
        factors = lora_variant_parameters(encoder)
    else:
        weights = _target_weights(encoder, targets)
        for p in encoder.parameters():
            p.requires_grad_(False)
        for w in weights:
            if PROJECTION_VARIANTS[variant] == "additive" and (w.shape[0] % rank or w.shape[1] % rank):
                raise ConfigError(f"--lora-rank {rank}: the additive form needs r to divide {tuple(w.shape)}")
            w.requires_grad_(True)
        model._lora_projected_weights = weights          # found again by projected_factory
        factors = sum(rank * (w.shape[0] + w.shape[1]) for w in weights)
    return {"variant": variant, "rank": rank, "scale": scale, "factor_parameters": factors}


def projected_factory(model: nn.Module, variant: str, rank: int, alpha: float | None,
                      lr_multipliers: Mapping[str, float], no_decay: set[str]
                      ) -> Callable[[list[tuple[str, nn.Parameter]], Any], torch.optim.Optimizer]:
    """The Trainer's ``optimizer_factory`` of an optimizer form: :class:`LoRAProjectedOptimizer` over AdamW for the
    weights :func:`apply_variant` marked (factor group: the base lr, no weight decay), the other trainable
    parameters (the head) in the usual groups. Draws are seeded by the Trainer's ``--seed``."""
    weights = model._lora_projected_weights
    ids = {id(w) for w in weights}
    # named like the other groups (torch requires all groups or none to carry param_names)
    factor_names = [f"lora_projected.{i}.{f}" for i in range(len(weights)) for f in ("A", "B")]

    def factory(named_parameters: list[tuple[str, nn.Parameter]], config: Any) -> torch.optim.Optimizer:
        others = [(n, p) for n, p in named_parameters if id(p) not in ids]
        groups = parameter_groups(others, config.learning_rate, config.weight_decay, no_decay, lr_multipliers)
        return LoRAProjectedOptimizer(torch.optim.AdamW, weights, rank, PROJECTION_VARIANTS[variant],
                                      scale=_scale(rank, alpha), other_params=groups,
                                      factor_options={"weight_decay": 0.0, "lr": config.learning_rate,
                                                      "lr_multiplier": 1.0, "param_names": factor_names},
                                      generator=torch.Generator().manual_seed(int(config.seed)),
                                      lr=config.learning_rate, betas=config.adam_betas, eps=config.adam_epsilon)

    return factory
