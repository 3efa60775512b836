"""The Trainer's default optimizer (AdamW without decay on biases and norms) and linear warm-up/decay schedule."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from kexue.train.config import TrainerConfig


def no_decay_parameter_names(model: nn.Module) -> set[str]:
    """Names of parameters that should get no weight decay: biases and the weights of normalisation layers.

    A parameter is exempt if its name ends in ``bias`` or it belongs to a module whose class name contains
    ``Norm`` (``LayerNorm``, ``RMSNorm``, ``GroupNorm``, ``BatchNorm1d``, kexue's own norms).

    Args:
        model: the module whose ``named_parameters()`` names are returned.
    """
    out = set()
    for module_name, module in model.named_modules():
        is_norm = "norm" in type(module).__name__.lower()
        for param_name, _ in module.named_parameters(recurse=False):
            if is_norm or param_name == "bias" or param_name.endswith("_bias"):
                out.add(f"{module_name}.{param_name}" if module_name else param_name)
    return out


def default_optimizer(named_parameters: Sequence[tuple[str, nn.Parameter]], config: TrainerConfig,
                      no_decay: set[str] | None = None) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, in two groups: with and without weight decay.

    Args:
        named_parameters: ``(name, parameter)`` pairs with ``requires_grad=True`` (the Trainer passes the
            unwrapped model's trainable parameters).
        config: supplies ``learning_rate``, ``weight_decay``, ``adam_betas``, ``adam_epsilon``.
        no_decay: names exempt from weight decay (default: names ending in ``bias``, so plain models work;
            the Trainer passes :func:`no_decay_parameter_names` of its model).

    Returns:
        ``torch.optim.AdamW`` with groups ``[{decay}, {weight_decay=0}]`` (empty groups omitted).

    Source: Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019); the bias/LayerNorm
    exemption follows BERT's fine-tuning recipe (Devlin et al., 2019).
    """
    if no_decay is None:
        no_decay = {n for n, _ in named_parameters if n.endswith("bias")}
    decay = [p for n, p in named_parameters if n not in no_decay]
    exempt = [p for n, p in named_parameters if n in no_decay]
    groups = [g for g in ({"params": decay, "weight_decay": config.weight_decay},
                          {"params": exempt, "weight_decay": 0.0}) if g["params"]]
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=config.adam_betas, eps=config.adam_epsilon)


def linear_warmup_decay(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int) -> LambdaLR:
    """Learning-rate multiplier rising linearly from 0 to 1 over ``warmup_steps``, then falling linearly to 0
    at ``total_steps`` (``LambdaLR``; multiplies each group's initial learning rate, so per-group multipliers
    survive).

    Multiplier at scheduler step ``s`` (0 before the first optimizer step): ``s / warmup_steps`` while
    ``s < warmup_steps``, else ``max(0, (total_steps − s) / (total_steps − warmup_steps))``. This is the
    schedule of BERT and of ``transformers.get_linear_schedule_with_warmup``.

    Args:
        optimizer: the optimizer to schedule.
        total_steps: optimizer steps of the whole run (>= 1).
        warmup_steps: warm-up steps (0 <= warmup_steps < total_steps, or 0).
    """
    decay_span = max(1, total_steps - warmup_steps)

    def multiplier(step: int) -> float:
        if step < warmup_steps:
            return step / warmup_steps
        return max(0.0, (total_steps - step) / decay_span)

    return LambdaLR(optimizer, multiplier)


def warmup_steps_for(total_steps: int, warmup_ratio: float) -> int:
    """``ceil(warmup_ratio · total_steps)``: the number of warm-up steps for a ratio in [0, 1)."""
    return math.ceil(warmup_ratio * total_steps)
