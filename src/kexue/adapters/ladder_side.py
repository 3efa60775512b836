"""Ladder Side-Tuning (LST): a frozen backbone and a small trainable side network fed by its hidden states.

Back-propagation never enters the backbone (it runs under ``torch.no_grad()``), so trainable parameters, training
memory and time all drop. Su's variant (LST-CLUE), the default here (``fusion="add"``)::

    x₀   = P₀ e                                   (e = backbone embedding output, hidden_states[0])
    xᵢ₊₁ = Blockᵢ(xᵢ) + Pᵢ₊₁ h_{tap(i)}           (h_j = output of backbone block j = hidden_states[j + 1])

with bias-free projections P (backbone width → side width), taps ``tap(i) = (i+1)·L_backbone/L_side - 1``
(12 → 4 layers: blocks [2, 5, 8, 11]), side width 128, 4 layers, 4 heads, FFN 512, DeepNorm-style truncated-normal
init ``std = 1.13684723/√d_in · L_side^{-1/2}``. The paper's gated fusion (``fusion="gate"``) feeds block i with
``μᵢ·Pᵢ₊₁ h_{tap(i)} + (1-μᵢ)·xᵢ``, ``μᵢ = sigmoid(aᵢ/T)`` (aᵢ learnable, init 0; the paper's T and init were not
verified by the spec, T=0.1 here).

Sources: Su Jianlin, "Ladder Side-Tuning:预训练模型的'过墙梯'" (2022-06-20), https://kexue.fm/archives/9138;
Sung, Cho & Bansal, "LST: Ladder Side-Tuning for Parameter and Memory Efficient Transfer Learning", NeurIPS 2022,
arXiv 2206.06522.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from kexue.errors import ConfigError

__all__ = ["LadderSideNetwork", "uniform_taps", "side_parameter_count"]

_TRUNC_STD_FACTOR = 1.13684723  # makes a ±2σ truncated normal have standard deviation σ


def uniform_taps(backbone_layers: int, side_layers: int) -> list[int]:
    """Backbone block indices (0-based) feeding side layers: ``(i+1)·L_b/L_s - 1`` (rounded down).

    12/4 → [2, 5, 8, 11]; 24/4 → [5, 11, 17, 23]. Raises ConfigError if ``side_layers > backbone_layers``.
    """
    if not 1 <= side_layers <= backbone_layers:
        raise ConfigError(f"side_layers must be in [1, backbone_layers={backbone_layers}], got {side_layers}")
    return [(i + 1) * backbone_layers // side_layers - 1 for i in range(side_layers)]


def side_parameter_count(backbone_hidden: int, side_hidden: int, side_layers: int, side_ffn: int,
                         fusion: str = "add") -> int:
    """Analytic trainable-parameter count of :class:`LadderSideNetwork` (torch TransformerEncoderLayer blocks).

    ``(1 + L)·d·h`` projections + per block ``4h² + 4h`` (attention) ``+ 2hf + f + h`` (FFN) ``+ 4h`` (2 LayerNorms),
    plus L gate logits for ``fusion="gate"``. Su's config with d=768 ≈ 1.28M.
    """
    h, f = side_hidden, side_ffn
    per_block = 4 * h * h + 4 * h + 2 * h * f + f + h + 4 * h
    return (1 + side_layers) * backbone_hidden * h + side_layers * per_block + (side_layers if fusion == "gate" else 0)


def _hidden_states(output: Any) -> tuple[torch.Tensor, ...]:
    states = output.get("hidden_states") if isinstance(output, dict) else getattr(output, "hidden_states", None)
    if states is None:
        raise ConfigError("the backbone returned no hidden_states; it must accept output_hidden_states=True")
    return tuple(states)


class LadderSideNetwork(nn.Module):
    """A frozen backbone plus a trainable side Transformer fed through down-projected ladders.

    Args:
        backbone: any module called as ``backbone(input_ids=..., attention_mask=..., output_hidden_states=True)``
            returning ``hidden_states`` (tuple, index 0 = embeddings, HF convention): transformers models,
            kexue's Transformer. Its parameters are frozen (``requires_grad=False``).
        side_hidden, side_layers, side_heads, side_ffn: side Transformer size (Su: 128, 4, 4, 512).
        taps: ``"uniform"`` or a list of ``side_layers`` backbone block indices (0-based).
        fusion: ``"add"`` (Su) | ``"gate"`` (paper). gate_temperature: T for the gate.
        init: ``"deepnorm"`` (Su's truncated normal) | ``"default"`` (torch's init).
        backbone_hidden, backbone_layers: default to ``backbone.config.hidden_size / num_hidden_layers``.
        dropout: side-network dropout. backbone_eval: keep the backbone in eval mode (no dropout) while training.

    Forward: ``input_ids [batch, seq]`` (long), ``attention_mask [batch, seq]`` (1 = keep), extra backbone kwargs
    → side hidden states ``[batch, seq, side_hidden]`` (pool e.g. the first token for classification).
    Raises ConfigError on inconsistent sizes, taps or options. Source: https://kexue.fm/archives/9138
    """

    def __init__(self, backbone: nn.Module, side_hidden: int = 128, side_layers: int = 4, side_heads: int = 4,
                 side_ffn: int = 512, taps: str | Sequence[int] = "uniform", fusion: str = "add",
                 gate_temperature: float = 0.1, init: str = "deepnorm", backbone_hidden: int | None = None,
                 backbone_layers: int | None = None, dropout: float = 0.1, backbone_eval: bool = True) -> None:
        super().__init__()
        config = getattr(backbone, "config", None)
        backbone_hidden = backbone_hidden or getattr(config, "hidden_size", None)
        backbone_layers = backbone_layers or getattr(config, "num_hidden_layers", None)
        if backbone_hidden is None or backbone_layers is None:
            raise ConfigError("pass backbone_hidden= and backbone_layers= (the backbone has no config to read)")
        if fusion not in ("add", "gate"):
            raise ConfigError(f"fusion must be 'add' or 'gate', got {fusion!r}")
        if init not in ("deepnorm", "default"):
            raise ConfigError(f"init must be 'deepnorm' or 'default', got {init!r}")
        if side_hidden % side_heads:
            raise ConfigError(f"side_hidden={side_hidden} is not divisible by side_heads={side_heads}")
        if taps == "uniform":
            tap_list = uniform_taps(backbone_layers, side_layers)
        else:
            tap_list = [int(t) for t in taps]
            if len(tap_list) != side_layers or any(not 0 <= t < backbone_layers for t in tap_list):
                raise ConfigError(f"taps must be {side_layers} block indices in [0, {backbone_layers}), "
                                  f"got {list(taps)}")
        self.backbone = backbone
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.taps, self.fusion, self.gate_temperature = tap_list, fusion, gate_temperature
        self.backbone_eval, self.side_hidden = backbone_eval, side_hidden
        self.ladders = nn.ModuleList(nn.Linear(backbone_hidden, side_hidden, bias=False)
                                     for _ in range(side_layers + 1))
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(side_hidden, side_heads, dim_feedforward=side_ffn, dropout=dropout,
                                       activation="gelu", batch_first=True) for _ in range(side_layers))
        self.gate_logits = nn.Parameter(torch.zeros(side_layers)) if fusion == "gate" else None
        if init == "deepnorm":
            self._deepnorm_init(side_layers)

    def _deepnorm_init(self, side_layers: int) -> None:
        scale = _TRUNC_STD_FACTOR / math.sqrt(side_layers)
        with torch.no_grad():
            for module in list(self.ladders) + list(self.blocks):
                for name, p in module.named_parameters():
                    if p.dim() == 2 and "norm" not in name:
                        std = scale / math.sqrt(p.shape[1])
                        nn.init.trunc_normal_(p, std=std, a=-2 * std, b=2 * std)
                    elif name.endswith("bias") and "norm" not in name:
                        p.zero_()

    def train(self, mode: bool = True) -> LadderSideNetwork:
        """Set train/eval mode; the backbone stays in eval mode when ``backbone_eval`` is True."""
        super().train(mode)
        if self.backbone_eval:
            self.backbone.eval()
        return self

    def side_parameters(self) -> list[nn.Parameter]:
        """The trainable parameters (ladders, side blocks, gates) — give these to the optimizer."""
        return [p for n, p in self.named_parameters() if not n.startswith("backbone.")]

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                **backbone_kwargs: Any) -> torch.Tensor:
        """Side hidden states ``[batch, seq, side_hidden]``; the backbone runs without autograd."""
        with torch.no_grad():
            out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True,
                                **backbone_kwargs)
        states = _hidden_states(out)
        if len(states) <= max(self.taps) + 1:
            raise ConfigError(f"backbone returned {len(states)} hidden states; taps {self.taps} need "
                              f"{max(self.taps) + 2}")
        padding = None if attention_mask is None else attention_mask == 0
        x = self.ladders[0](states[0])
        for i, block in enumerate(self.blocks):
            h = self.ladders[i + 1](states[self.taps[i] + 1])
            if self.fusion == "add":
                x = block(x, src_key_padding_mask=padding) + h
            else:
                mu = torch.sigmoid(self.gate_logits[i] / self.gate_temperature)
                x = block(mu * h + (1 - mu) * x, src_key_padding_mask=padding)
        return x
