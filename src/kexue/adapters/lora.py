"""LoRA (``W = W₀ + BA·α/r``, W₀ frozen) through the ``peft`` package, on any ``nn.Module``.

Thin, typed wrappers: choose target modules by name, merge the adapter into the weights, save / load the adapter.
The gradient analysis of Su's post (``∂L/∂A = G Bᵀ``, ``∂L/∂B = Aᵀ G`` in his ``W₀ + AB`` convention; compute
``(XA)B`` rather than ``X(W₀ + AB)``) is what peft's LoRA layers implement.

Sources: Su Jianlin, "梯度视角下的LoRA:简介、分析、猜测及推广" (2023-04-17), https://kexue.fm/archives/9590;
Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", arXiv 2106.09685; peft
(https://github.com/huggingface/peft).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from kexue.errors import CheckpointError, ConfigError

__all__ = ["apply_lora", "merge_lora", "save_lora", "load_lora", "count_parameters"]


def _missing_targets(model: nn.Module, names: Sequence[str]) -> list[str]:
    module_names = [n for n, _ in model.named_modules()]
    return [t for t in names if not any(n == t or n.endswith("." + t) for n in module_names)]


def apply_lora(model: nn.Module, target_modules: Sequence[str], r: int = 8, alpha: float | None = None,
               dropout: float = 0.0, modules_to_save: Sequence[str] | None = None, init_lora_weights: bool = True,
               bias: str = "none") -> nn.Module:
    """Wrap ``model`` with LoRA adapters on the named sub-modules; only adapter (and ``modules_to_save``)
    parameters stay trainable.

    Args:
        model: any nn.Module (kexue's Transformer, a transformers model, a plain module); modified in place.
        target_modules: module names or name suffixes (e.g. ``["query", "value"]``) of ``nn.Linear`` /
            ``nn.Embedding`` / ``nn.Conv*`` layers.
        r: rank ≥ 1. alpha: scaling numerator (default ``2r``, i.e. scale 2). dropout: LoRA dropout.
        modules_to_save: extra modules trained fully and saved with the adapter (e.g. ``["classifier"]``).
        init_lora_weights: True = B zero (the wrapped model starts equal to the base model); False = random B
            (for tests).
        bias: peft's bias option (``"none"`` | ``"all"`` | ``"lora_only"``).

    Returns: a ``peft.PeftModel`` (call it like the original model).
    Raises: ConfigError for r < 1 or a target name that matches no module.
    """
    from peft import LoraConfig, get_peft_model

    if int(r) != r or r < 1:
        raise ConfigError(f"LoRA rank r must be a positive integer, got {r}")
    targets = list(target_modules)
    if not targets:
        raise ConfigError("apply_lora: target_modules is empty")
    missing = _missing_targets(model, targets + list(modules_to_save or []))
    if missing:
        raise ConfigError(f"apply_lora: no module named (or ending with) {missing} in {type(model).__name__}")
    config = LoraConfig(r=int(r), lora_alpha=float(2 * r if alpha is None else alpha), lora_dropout=dropout,
                        target_modules=targets, modules_to_save=list(modules_to_save) if modules_to_save else None,
                        init_lora_weights=init_lora_weights, bias=bias)
    return get_peft_model(model, config)


def merge_lora(peft_model: nn.Module) -> nn.Module:
    """Fold the adapters into the base weights (``W₀ + BA·α/r``) and return the plain base model (no peft layers).

    Raises ConfigError if ``peft_model`` is not a peft model.
    """
    if not hasattr(peft_model, "merge_and_unload"):
        raise ConfigError(f"merge_lora expects a peft model, got {type(peft_model).__name__}")
    return peft_model.merge_and_unload()


def save_lora(peft_model: nn.Module, path: str | Path) -> Path:
    """Save only the adapter (``adapter_config.json`` + ``adapter_model.safetensors``) to the folder ``path``."""
    if not hasattr(peft_model, "save_pretrained") or not hasattr(peft_model, "peft_config"):
        raise ConfigError(f"save_lora expects a peft model, got {type(peft_model).__name__}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(path))
    return path


def load_lora(base_model: nn.Module, path: str | Path, is_trainable: bool = False) -> nn.Module:
    """Attach a saved adapter to ``base_model`` (same architecture as when saved); returns a ``peft.PeftModel``.

    Raises CheckpointError when the folder has no adapter config or weights.
    """
    from peft import PeftModel

    path = Path(path)
    for name in ("adapter_config.json",):
        if not (path / name).is_file():
            raise CheckpointError(f"no LoRA adapter at {path}", missing=[name])
    if not any((path / n).is_file() for n in ("adapter_model.safetensors", "adapter_model.bin")):
        raise CheckpointError(f"no LoRA adapter weights at {path}", missing=["adapter_model.safetensors"])
    return PeftModel.from_pretrained(base_model, str(path), is_trainable=is_trainable)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` scalar parameter counts of ``model``."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
