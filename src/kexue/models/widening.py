"""Lossless widening of a trained Transformer: a k× wider model computing the same function.

Source: "我们可以无损放大一个Transformer模型吗(一)", https://kexue.fm/archives/8444 (spec §11).

Every wide vector is the narrow one *locally repeated* (``[x1, x1, x2, x2, ...]`` for k = 2) times a constant
``c``; each weight matrix is the narrow one with its rows and columns repeated (``W[out_map][:, in_map]``) and
scaled so the invariant holds after every layer. For a Linear whose input is ``c_in·rep(x)`` and whose output
must be ``c_out·rep(y)``: ``W̃ = rep(W)·c_out/(k·c_in)``, ``b̃ = rep(b)·c_out``.

* BERT / RoFormer (LayerNorm): the article's ``c = 1/√k`` (norm-preserving); LayerNorm ``γ̃ = rep(γ)/√k``,
  ``β̃ = rep(β)/√k``. The FFN's activation input is an exact repeat (``W1/√k``, ``b1`` unchanged), so the second
  Dense is ``W2/(k√k)`` with bias ``b2/√k`` — *not* the article's ``b2/k`` (spec §11 pitfall).
* RoFormerV2 (scale-free RMS norm, no biases): a norm output always has RMS 1, and ``rep(x)`` keeps the RMS
  of ``x``, so the invariant must be ``c = 1`` (hidden state = ``rep(x)``); every matrix is ``rep(W)/k``
  (attention Q/K times the head-size factor below) and the tied embeddings are ``rep(E)/k`` so that the
  logits ``h̃·Ẽᵀ = h·Eᵀ``. The embedding norm then sees ``rep(e)/k`` and normalises it back to
  ``rep(norm(e))``; only its ε acts k² times larger (relative effect ``ε·k²/mean(e²)``, ~1e-8 at ε = 1e-12).

Attention, two modes:

* ``mode="head_size"`` (the article's): same heads, head size ``d -> k·d``. Scores ``q̃·k̃/√(kd)`` equal
  ``q·k/√d`` when q and k are scaled by ``k^{-1/4}`` each (the article's ``2^{1/4}·W/2`` for k = 2 with
  ``c = 1/√2``). With RoPE the rows of q and k are repeated *pair-wise* inside each head
  (``[x1, x2, x1, x2, x3, x4, ...]``) so rotation pairs stay pairs; the pair index (hence its frequency θ_i)
  changes, so RoFormer / RoFormerV2 become only approximately equal, as the article says.
* ``mode="heads"``: heads ``h -> k·h``, same head size ``d``: new head ``g`` is a copy of old head ``g // k``
  (q, k and v rows of a head repeated as a block), so its scores are exactly the old head's with the
  unchanged ``1/√d`` scale (q and k not rescaled), RoPE frequencies are the same, and the output projection
  averages the k copies. Exact with RoPE too.

Heads: the MLM transform Dense gets an exact-repeat activation input (``W/(k·c)``, bias unchanged), its
LayerNorm ``/√k``; the vocabulary bias is unchanged. The pooler is widened so its output is an exact repeat
``rep(p)`` and the NSP logits are unchanged.

Exactness is up to the norms' ε: LayerNorm of ``rep(z)/√k`` with ε equals LayerNorm of ``z`` with ``k·ε``
(relative effect ``ε(k−1)/σ²``, ~1e-10 at ε = 1e-12).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from kexue.errors import ConfigError
from kexue.models.config import TransformerConfig
from kexue.models.transformer import Transformer

MODES = ("head_size", "heads")


def _local(n: int, k: int) -> torch.Tensor:
    """Old index of each of the ``k·n`` new indices under local repetition: ``i -> i // k``."""
    return torch.arange(n * k) // k


def _head_layout(config: TransformerConfig, k: int, mode: str) -> torch.Tensor:
    """Old index (into ``[heads·d]``) of each new q/k/v row (``[new_heads·new_d]``)."""
    h, d = config.num_attention_heads, config.head_size
    if mode == "heads":
        new = torch.arange(k * h * d)
        return (new // d // k) * d + new % d          # new head g, row r -> old head g // k, row r
    new = torch.arange(h * k * d)
    head, r = new // (k * d), new % (k * d)
    if config.uses_rope:
        old_r = 2 * ((r // 2) // k) + r % 2            # pair-wise repetition keeps rotation pairs together
    else:
        old_r = r // k
    return head * d + old_r


def widened_config(config: TransformerConfig, factor: int, mode: str = "head_size") -> TransformerConfig:
    """The configuration of the ``factor``× wider model: hidden, intermediate (and embedding) sizes ×k; heads
    ×k in ``mode="heads"``, head size ×k in ``mode="head_size"``; everything else unchanged.

    Raises:
        ConfigError: ``factor`` not a positive integer (``--factor``) or an unknown ``mode`` (``--mode``).
    """
    _check(factor, mode)
    k = factor
    return dataclasses.replace(
        config,
        hidden_size=config.hidden_size * k,
        intermediate_size=config.intermediate_size * k,
        embedding_size=None if config.embedding_size is None else config.embedding_size * k,
        num_attention_heads=config.num_attention_heads * (k if mode == "heads" else 1),
    )


def _check(factor: int, mode: str) -> None:
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        raise ConfigError(f"--factor: expected a positive integer, got {factor!r}")
    if mode not in MODES:
        raise ConfigError(f"--mode: expected one of {MODES}, got {mode!r}")


def widen_state_dict(state: dict[str, torch.Tensor], config: TransformerConfig, factor: int = 2,
                     mode: str = "head_size") -> tuple[dict[str, torch.Tensor], TransformerConfig]:
    """Widen a kexue :class:`Transformer` state dict (kexue parameter names) by ``factor``.

    Args:
        state: ``Transformer.state_dict()`` of a model with ``config``.
        config: its :class:`TransformerConfig` (BERT, RoFormer or RoFormerV2; any heads).
        factor: the integer width multiplier ``k`` (1 returns a copy).
        mode: ``"head_size"`` (the article's; exact without RoPE) or ``"heads"`` (exact with RoPE too).
    Returns:
        ``(new_state, new_config)``: tensors in the input dtype, new shapes ×k along every hidden axis.
    Raises:
        ConfigError: bad ``factor`` / ``mode``; a state dict key this function does not know (naming it).
    Source: https://kexue.fm/archives/8444
    """
    new_config = widened_config(config, factor, mode)
    k = factor
    c = 1.0 if config.norm_type == "rms_norm" else 1.0 / math.sqrt(k)  # hidden states = c·rep(x)
    if config.norm_type == "rms_norm":
        # tied logits h̃·Ẽᵀ need Ẽ = rep(E)/k, unless the MLM head's bias-free dense can absorb the 1/k
        emb_c = 1.0 if config.embedding_width != config.hidden_size else 1.0 / k
    else:
        emb_c = c
    hid = _local(config.hidden_size, k)
    emb = _local(config.embedding_width, k)
    ffn = _local(config.intermediate_size, k)
    heads = _head_layout(config, k, mode)
    qk_scale = k ** -0.25 if mode == "head_size" else 1.0

    def lin(name: str, out_map, in_map, c_in: float, c_out: float, w_extra: float = 1.0) -> None:
        w = state[name + ".weight"]
        out[name + ".weight"] = w[out_map][:, in_map] * (c_out * w_extra / (k * c_in))
        if name + ".bias" in state:
            out[name + ".bias"] = state[name + ".bias"][out_map] * (c_out * w_extra)

    def norm(name: str, index, scale: float) -> None:
        for part in ("weight", "bias"):
            if f"{name}.{part}" in state:
                out[f"{name}.{part}"] = state[f"{name}.{part}"][index] * scale

    out: dict[str, torch.Tensor] = {}
    for table in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        key = f"embeddings.{table}.weight"
        if key in state:
            out[key] = state[key][:, emb] * emb_c
    norm("embeddings.norm", emb, c)
    if "embeddings_project.weight" in state:
        lin("embeddings_project", hid, emb, 1.0 if config.norm_type == "rms_norm" else c, c)
    hidden = config.hidden_size
    for i in range(config.num_hidden_layers):
        p = f"layers.{i}."
        w, b = state[p + "attention.qkv.weight"], state.get(p + "attention.qkv.bias")
        parts_w, parts_b = [], []
        for j, extra in enumerate((qk_scale, qk_scale, 1.0)):   # query, key, value
            # q/k/v carry c·rep(v) (value) or k^{-1/4}·rep(q) (query, key): c_out = c for v, 1 for q/k.
            c_out = c if j == 2 else 1.0
            parts_w.append(w[j * hidden:(j + 1) * hidden][heads][:, hid] * (c_out * extra / (k * c)))
            if b is not None:
                parts_b.append(b[j * hidden:(j + 1) * hidden][heads] * (c_out * extra))
        out[p + "attention.qkv.weight"] = torch.cat(parts_w, dim=0)
        if b is not None:
            out[p + "attention.qkv.bias"] = torch.cat(parts_b, dim=0)
        lin(p + "attention.output", hid, heads, c, c)
        norm(p + "attention_norm", hid, c)
        lin(p + "intermediate", ffn, hid, c, 1.0)          # activation input: an exact repeat
        lin(p + "output", hid, ffn, 1.0, c)                # W2·c/k, bias b2·c  (b/√k, not b/k)
        norm(p + "output_norm", hid, c)
    if "pooler.dense.weight" in state:
        lin("pooler.dense", hid, hid, c, 1.0)               # tanh input and pooler output: exact repeats
    if "nsp_head.seq_relationship.weight" in state:
        w = state["nsp_head.seq_relationship.weight"]
        out["nsp_head.seq_relationship.weight"] = w[:, hid] / k
        out["nsp_head.seq_relationship.bias"] = state["nsp_head.seq_relationship.bias"].clone()
    if "mlm_head.dense.weight" in state:
        if config.norm_type == "rms_norm":                  # V2: logits = (dense h)·Eᵀ, needs c_out·emb_c = 1/k
            lin("mlm_head.dense", emb, hid, c, 1.0 / (k * emb_c))
        else:
            lin("mlm_head.dense", emb, hid, c, 1.0)         # GeLU input: an exact repeat
    norm("mlm_head.norm", emb, 1.0 / (k * emb_c))          # LayerNorm output · Ẽᵀ must equal the narrow logits
    if "mlm_head.bias" in state:
        out["mlm_head.bias"] = state["mlm_head.bias"].clone()
    unknown = sorted(set(state) - set(out))
    if unknown:
        raise ConfigError(f"widen_state_dict: do not know how to widen {unknown}")
    return {name: t.contiguous() for name, t in out.items()}, new_config


def widen_transformer(model: Transformer, factor: int = 2, mode: str = "head_size") -> Transformer:
    """A new :class:`Transformer` ``factor``× as wide as ``model`` that computes the same function.

    Hidden states of the wide model are ``rep(x)/√k`` (BERT, RoFormer) or ``rep(x)`` (RoFormerV2) at every
    layer, where ``rep`` repeats each feature k times in place (``x.repeat_interleave(k, -1)``); MLM and NSP
    logits are unchanged. Exact (up to the norms' ε and rounding) for BERT in both modes and for RoFormer /
    RoFormerV2 in ``mode="heads"``; approximate for RoPE models in ``mode="head_size"`` (see the module doc).

    Args:
        model: a kexue Transformer (any family, any heads); not modified.
        factor: integer width multiplier ``k`` >= 1.
        mode: ``"head_size"`` (head size ×k, the article's) or ``"heads"`` (number of heads ×k).
    Returns:
        the widened model, in ``model``'s dtype, device, training mode and ``residual_alpha``.
    Raises:
        ConfigError: bad ``factor`` (``--factor``) or ``mode`` (``--mode``).
    Source: https://kexue.fm/archives/8444
    """
    with torch.no_grad():
        state, config = widen_state_dict(model.state_dict(), model.config, factor, mode)
    param = next(model.parameters())
    wide = Transformer(config).to(device=param.device, dtype=param.dtype)
    wide.load_state_dict(state, strict=True)
    wide.residual_alpha = model.residual_alpha
    wide.train(model.training)
    return wide
