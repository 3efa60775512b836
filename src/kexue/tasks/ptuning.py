"""The P-tuning recipe (``kexue train ptuning``): PET's scoring with a template of trainable prompt tokens, the
model frozen (only the prompt rows and their encoder train) or fully fine-tuned (``--train-backbone``).

https://kexue.fm/archives/8295; units in :mod:`kexue.prompting.ptuning`. The default template is the reference
code's ``[CLS] u1..u4 [MASK] u5..u8 text [SEP]`` (``{text_b}`` appended for pair tasks); Su's auxiliary MLM loss
on the other tokens is ``--mlm-probability`` (default 0.15; 0 = the paper's plain loss). The reference settings
are Adam at 6e-4, batch 32, best checkpoint on valid. The flow (data, zero-shot, Trainer, best/, results.json)
is :func:`kexue.tasks.pet.run_prompt_recipe`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kexue.errors import ConfigError
from kexue.prompting import ClozePattern
from kexue.prompting.ptuning import PROMPT_ENCODERS, REFERENCE_TEMPLATE, PTuningModel, prompt_token_ids
from kexue.tasks.pet import PETConfig, run_prompt_recipe
from kexue.tasks.prompt_data import PRESETS, task_key
from kexue.train import TrainerConfig


@dataclass
class PTuningConfig(PETConfig):
    """:class:`kexue.tasks.pet.PETConfig` plus ``num_prompts`` (``--num-prompts``), ``prompt_encoder``
    (``none | lstm | mlp``) and ``train_backbone`` (fine-tune everything instead of freezing the model)."""

    num_prompts: int = 8
    prompt_encoder: str = "none"
    train_backbone: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode in ("zero-shot", "unsupervised"):
            raise ConfigError(f"--mode: P-tuning trains its prompt on labelled data (few-shot or semi-supervised), "
                              f"got {self.mode!r}")
        if self.prompt_encoder not in PROMPT_ENCODERS:
            raise ConfigError(f"--prompt-encoder: expected one of {', '.join(PROMPT_ENCODERS)}, got "
                              f"{self.prompt_encoder!r}")
        if self.num_prompts < 1:
            raise ConfigError(f"--num-prompts: expected at least 1, got {self.num_prompts}")
        if self.pattern is not None and ClozePattern(self.pattern).num_prompts != self.num_prompts:
            raise ConfigError(f"--pattern {self.pattern!r}: has {ClozePattern(self.pattern).num_prompts} {{p}} slots, "
                              f"--num-prompts is {self.num_prompts}")


def default_template(num_prompts: int, data: str) -> str:
    """``{p}``×⌊n/2⌋ ``{mask}`` ``{p}``×⌈n/2⌉ ``{text}`` (n = 8: the reference layout), ``{text_b}`` appended when
    the task's preset pattern reads one; ChID keeps its blank inside the text."""
    preset = PRESETS.get(task_key(data), ("{text}", None))[0]
    half = num_prompts // 2
    if task_key(data) == "chid":
        return "{p}" * num_prompts + "{text_a}{mask}{text_b}"
    base = REFERENCE_TEMPLATE if num_prompts == 8 else "{p}" * half + "{mask}" + "{p}" * (num_prompts - half) + "{text}"
    return base + ("{text_b}" if "{text_b}" in preset else "")


def train_ptuning(cfg: PTuningConfig, trainer_cfg: TrainerConfig, log: Callable[[str], None] = print
                  ) -> dict[str, Any]:
    """``kexue train ptuning``: :func:`kexue.tasks.pet.run_prompt_recipe` with a :class:`PTuningModel`."""

    def build(backbone, tokenizer):
        ids = prompt_token_ids(tokenizer, cfg.num_prompts, backbone)
        log(f"prompt tokens: {', '.join(tokenizer.convert_ids_to_tokens(ids))} (ids {ids}); encoder "
            f"{cfg.prompt_encoder}; backbone {'trained' if cfg.train_backbone else 'frozen'}")
        return PTuningModel(backbone, ids, cfg.prompt_encoder, cfg.train_backbone), ids

    return run_prompt_recipe(cfg, trainer_cfg, log, task="ptuning", build=build,
                             recipe_pattern=cfg.pattern or default_template(cfg.num_prompts, cfg.data))
