"""kexue.optim: optimizers and parameter-group helpers from kexue.fm articles.

* :class:`AccumSGDM`, :class:`AccumAdam`, :class:`AccumAdamW`, :func:`beta_tilde` — gradient accumulation inside
  the momentum (https://kexue.fm/archives/8634);
* :class:`ChildTuningAdamW`, :func:`compute_fisher_mask` — ChildTuning-F / -D (https://kexue.fm/archives/8764);
* :class:`LoRAProjectedOptimizer` — LoRA as a projection of the full gradient (https://kexue.fm/archives/9590);
* :func:`lr_multiplier_groups`, :func:`layerwise_lr`, :func:`layerwise_lr_decay_groups` — per-module learning
  rates (https://kexue.fm/archives/7196).
"""

from kexue.optim.accumulated import AccumAdam, AccumAdamW, AccumSGDM, beta_tilde
from kexue.optim.child_tuning import ChildTuningAdamW, compute_fisher_mask, default_child_tuning_filter
from kexue.optim.lora_projected import LoRAProjectedOptimizer
from kexue.optim.param_groups import (
    DEFAULT_NO_DECAY,
    layerwise_lr,
    layerwise_lr_decay_groups,
    lr_multiplier_groups,
    name_matches,
)

__all__ = [
    "AccumSGDM",
    "AccumAdam",
    "AccumAdamW",
    "beta_tilde",
    "ChildTuningAdamW",
    "compute_fisher_mask",
    "default_child_tuning_filter",
    "LoRAProjectedOptimizer",
    "DEFAULT_NO_DECAY",
    "name_matches",
    "lr_multiplier_groups",
    "layerwise_lr",
    "layerwise_lr_decay_groups",
]
