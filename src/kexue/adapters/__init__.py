"""kexue.adapters: parameter-efficient tuning.

* :func:`apply_lora`, :func:`merge_lora`, :func:`save_lora`, :func:`load_lora` — LoRA through peft
  (https://kexue.fm/archives/9590);
* :class:`LadderSideNetwork` — Ladder Side-Tuning (https://kexue.fm/archives/9138).
"""

from kexue.adapters.ladder_side import LadderSideNetwork, side_parameter_count, uniform_taps
from kexue.adapters.lora import apply_lora, count_parameters, load_lora, merge_lora, save_lora

__all__ = [
    "apply_lora",
    "merge_lora",
    "save_lora",
    "load_lora",
    "count_parameters",
    "LadderSideNetwork",
    "uniform_taps",
    "side_parameter_count",
]
