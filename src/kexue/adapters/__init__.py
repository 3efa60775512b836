"""kexue.adapters: parameter-efficient tuning.

* :func:`apply_lora`, :func:`merge_lora`, :func:`save_lora`, :func:`load_lora` — LoRA through peft
  (https://kexue.fm/archives/9590);
* :class:`LoRALinear`, :func:`apply_lora_variant`, :func:`merge_lora_variants` — the article's own LoRA forms
  (``W₀ + AB``, symmetric init, additive factorisation; https://kexue.fm/archives/9590);
* :class:`LadderSideNetwork` — Ladder Side-Tuning (https://kexue.fm/archives/9138).
"""

from kexue.adapters.ladder_side import LadderSideNetwork, side_parameter_count, uniform_taps
from kexue.adapters.lora import apply_lora, count_parameters, load_lora, merge_lora, save_lora
from kexue.adapters.lora_variants import LoRALinear, apply_lora_variant, merge_lora_variants

__all__ = [
    "apply_lora",
    "merge_lora",
    "save_lora",
    "load_lora",
    "count_parameters",
    "LoRALinear",
    "apply_lora_variant",
    "merge_lora_variants",
    "LadderSideNetwork",
    "uniform_taps",
    "side_parameter_count",
]
