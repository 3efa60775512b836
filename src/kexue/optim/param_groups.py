"""Parameter groups: learning-rate multipliers by module-name pattern, and layer-wise learning-rate decay.

The CRF case (Su): with a fine-tuning learning rate the CRF transition matrix barely moves; give it its own
learning rate (≥ 100× the encoder's). bert4keras re-parameterises (``S = λφ``), which gives λ² under SGD and λ under
Adam; in PyTorch a param group with ``lr = λ·base_lr`` is the direct way.

Sources: Su Jianlin, "你的CRF层的学习率可能不够大" (2020-02-07), https://kexue.fm/archives/7196. Layer-wise
learning-rate decay is not from the blog: Clark et al., ELECTRA (arXiv 2003.10555) / Bao et al., BEiT (arXiv
2106.08254).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from kexue.errors import ConfigError

__all__ = ["DEFAULT_NO_DECAY", "name_matches", "lr_multiplier_groups", "layerwise_lr_decay_groups", "layerwise_lr",
           "head_lr_multipliers"]

_GLOB_CHARS = set("*?[")
DEFAULT_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


def name_matches(name: str, pattern: str) -> bool:
    """Whether a parameter name (``"encoder.layer.0.attention.self.query.weight"``) matches a pattern.

    * ``"re:<regex>"``: ``re.search`` on the full name;
    * a glob (contains ``*``, ``?`` or ``[``): ``fnmatch`` on the full name or on any module prefix of it;
    * a plain string: matches a run of whole dotted components, e.g. ``"crf"`` matches ``"crf.transitions"`` and
      ``"head.crf.transitions"`` but not ``"crf_like.weight"``; ``"encoder.layer.1"`` does not match layer 11.
    """
    if pattern.startswith("re:"):
        return re.search(pattern[3:], name) is not None
    if _GLOB_CHARS & set(pattern):
        parts = name.split(".")
        return any(fnmatch.fnmatchcase(".".join(parts[:i]), pattern) for i in range(1, len(parts) + 1))
    return f".{pattern}." in f".{name}."


def _groups_from(entries: list[tuple[str, nn.Parameter, float, float]], base_lr: float) -> list[dict[str, Any]]:
    """Merge ``(name, param, multiplier, weight_decay)`` rows into torch param groups, preserving order."""
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, p, mult, wd in entries:
        key = (mult, wd)
        if key not in groups:
            groups[key] = {"params": [], "lr": base_lr * mult, "lr_multiplier": mult, "weight_decay": wd,
                           "param_names": []}
        groups[key]["params"].append(p)
        groups[key]["param_names"].append(name)
    return list(groups.values())


def lr_multiplier_groups(model: nn.Module, base_lr: float, multipliers: Mapping[str, float],
                         weight_decay: float = 0.0, no_decay: Sequence[str] | None = None,
                         strict: bool = True) -> list[dict[str, Any]]:
    """Torch param groups where parameters matching a pattern get ``lr = multiplier · base_lr``.

    Args:
        model: any nn.Module; only parameters with ``requires_grad`` are included.
        base_lr: the learning rate of unmatched parameters.
        multipliers: ``{pattern: multiplier}`` (see :func:`name_matches`); the first matching pattern in the
            mapping's order wins.
        weight_decay: the groups' weight decay; parameters whose name ends with an entry of ``no_decay``
            (e.g. ``("bias", "LayerNorm.weight")``) get 0.
        no_decay: name suffixes exempt from weight decay (None: none exempt).
        strict: raise when a pattern matches no trainable parameter (a typo must not pass silently).

    Returns:
        ``[{"params": [...], "lr": float, "lr_multiplier": float, "weight_decay": float, "param_names": [...]}]``,
        one group per distinct (multiplier, weight decay), usable by any ``torch.optim`` optimizer (torch ≥ 2.6
        reads ``param_names``).

    Raises:
        ConfigError: a non-positive multiplier, or (strict) a pattern that matches nothing.
    Source: https://kexue.fm/archives/7196 (e.g. ``{"crf": 100.0}``).
    """
    for pattern, mult in multipliers.items():
        if not mult > 0:
            raise ConfigError(f"lr multiplier for pattern {pattern!r} must be > 0, got {mult}")
    used: set[str] = set()
    entries = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        mult = 1.0
        for pattern, m in multipliers.items():
            if name_matches(name, pattern):
                mult = float(m)
                used.add(pattern)
                break
        wd = 0.0 if no_decay and any(name.endswith(nd) for nd in no_decay) else weight_decay
        entries.append((name, p, mult, wd))
    unused = [pat for pat in multipliers if pat not in used]
    if strict and unused:
        raise ConfigError(f"lr multiplier patterns matched no trainable parameter: {unused}")
    return _groups_from(entries, base_lr)


def layerwise_lr(model: nn.Module, rules: Mapping[str, float], base_lr: float) -> list[dict[str, Any]]:
    """The spec's name for :func:`lr_multiplier_groups` without weight decay: ``layerwise_lr(crf_model, {"crf": 100.0},
    1e-5)`` puts the CRF parameters at ``100 · base_lr``. Source: https://kexue.fm/archives/7196"""
    return lr_multiplier_groups(model, base_lr, rules)


def layerwise_lr_decay_groups(model: nn.Module, base_lr: float, decay: float, num_layers: int,
                              layer_pattern: str = r"(?:^|\.)layers?\.(\d+)\.",
                              embedding_patterns: Sequence[str] = ("embeddings",),
                              multipliers: Mapping[str, float] | None = None, weight_decay: float = 0.0,
                              no_decay: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Layer-wise learning-rate decay (not from the blog; ELECTRA / BEiT convention), optionally with multipliers.

    Depths: embeddings 0, block ``i`` (0-based, read from ``layer_pattern``'s first group) ``i + 1``, everything
    else (pooler, heads) ``num_layers + 1``. ``lr = base_lr · decay^(num_layers + 1 - depth)`` · the pattern
    multiplier (if any pattern of ``multipliers`` matches, first wins).

    Args:
        model: any nn.Module (trainable parameters only). base_lr: the head's learning rate.
        decay: factor in (0, 1]. num_layers: number of blocks L (block indices must be < L).
        layer_pattern: regex with one group capturing the block index (default matches ``layer.3.``/``layers.3.``).
        embedding_patterns: patterns (see :func:`name_matches`) marking depth-0 parameters.
        multipliers, weight_decay, no_decay: as in :func:`lr_multiplier_groups`.

    Returns: torch param groups as in :func:`lr_multiplier_groups`.
    Raises: ConfigError for decay outside (0, 1] or a block index ≥ num_layers.
    """
    if not 0.0 < decay <= 1.0:
        raise ConfigError(f"layer-wise lr decay must be in (0, 1], got {decay}")
    regex = re.compile(layer_pattern)
    multipliers = dict(multipliers or {})
    entries = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        match = regex.search(name)
        if match is not None:
            index = int(match.group(1))
            if index >= num_layers:
                raise ConfigError(f"parameter {name!r} has block index {index} but num_layers={num_layers}")
            depth = index + 1
        elif any(name_matches(name, pat) for pat in embedding_patterns):
            depth = 0
        else:
            depth = num_layers + 1
        mult = decay ** (num_layers + 1 - depth)
        for pattern, m in multipliers.items():
            if name_matches(name, pattern):
                mult *= float(m)
                break
        wd = 0.0 if no_decay and any(name.endswith(nd) for nd in no_decay) else weight_decay
        entries.append((name, p, mult, wd))
    return _groups_from(entries, base_lr)


def head_lr_multipliers(lr: float, head_lr: float | None, head_patterns: Sequence[str]) -> dict[str, float]:
    """``{pattern: head_lr / lr}`` for the task head's parameter patterns: the head learns at the absolute rate
    ``head_lr`` while the encoder stays at ``lr`` (``--head-lr`` of every ``kexue train`` recipe).

    A randomly initialised head on a pretrained encoder usually wants a much larger step than the encoder
    (the CRF case of https://kexue.fm/archives/7196 is the extreme one; a CRF's own transition multiplier is a
    re-parameterisation inside the CRF and multiplies on top of this). The result feeds ``lr_multipliers`` of
    :func:`lr_multiplier_groups` / :func:`kexue.train.technique_hooks.build_optimizer_factory`; because the
    schedule multiplies each group's initial lr, the head keeps the ratio ``head_lr / lr`` through warm-up and
    decay.

    Args:
        lr: the encoder's peak learning rate (``--lr``), > 0.
        head_lr: the head's peak learning rate (``--head-lr``), > 0; ``None`` = the same as ``lr`` (returns ``{}``).
        head_patterns: name patterns (see :func:`name_matches`) of the head's parameters, e.g. ``("head",)``.

    Returns:
        ``{pattern: head_lr / lr}`` for every pattern (``{}`` when ``head_lr`` is None).

    Raises:
        ConfigError: ``head_lr <= 0`` or ``lr <= 0`` (naming ``--head-lr`` / ``--lr``), or no pattern.
    """
    if head_lr is None:
        return {}
    if not head_lr > 0:
        raise ConfigError(f"--head-lr: expected a learning rate > 0, got {head_lr}")
    if not lr > 0:
        raise ConfigError(f"--lr: expected a learning rate > 0, got {lr}")
    if not head_patterns:
        raise ConfigError("--head-lr: this model names no head parameters to give it to")
    return {pattern: float(head_lr) / float(lr) for pattern in head_patterns}
