"""Multi-head self-attention with fused QKV, RoPE, residual attention scores and the entropy-invariant scale.

Sources: RealFormer, https://kexue.fm/archives/8027 (``A_n = QK^T/√d + A_{n-1}``); entropy-invariant scale,
https://kexue.fm/archives/8823 (``softmax(log_512(n)/√d · QK^T)``); RoPE, https://kexue.fm/archives/8265.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kexue.errors import ConfigError
from kexue.nn.fused import fused_linear
from kexue.nn.rotary import apply_rotary

ATTENTION_SCALES = ("standard", "entropy_invariant")


def entropy_invariant_factor(n: torch.Tensor | float, train_length: int = 512) -> torch.Tensor | float:
    """Multiplier ``log(n) / log(train_length)`` of the standard ``1/√d`` scale (``n`` = keys in the softmax).

    The full scale is ``log_{train_length}(n) / √d``; it equals ``1/√d`` at ``n = train_length``.
    Accepts a float or a tensor of key counts; ``n = 1`` gives 0.
    """
    if isinstance(n, torch.Tensor):
        return torch.log(n.clamp_min(1.0)) / math.log(train_length)
    return math.log(max(n, 1.0)) / math.log(train_length)


class MultiHeadAttention(nn.Module):
    """Self-attention ``[B, L, H] -> [B, L, H]`` with one fused ``qkv`` projection and an ``output`` projection.

    Module names (peft LoRA targets): ``qkv`` (Linear ``H -> 3H``, rows ordered query, key, value) and
    ``output`` (Linear ``H -> H``).

    Uses ``torch.nn.functional.scaled_dot_product_attention`` unless raw scores are needed (residual
    attention, or ``need_scores``), in which case it computes ``softmax(QK^T·scale + bias)V`` explicitly.
    At inference the projections (and an optional residual add) run through :func:`kexue.nn.fused.fused_linear`.

    Args:
        hidden_size: ``H``; num_heads: ``h`` (``H % h == 0``).
        bias: whether the projections have biases (False for RoFormerV2).
        dropout: attention-probability dropout.
        rotary_value: also rotate the values (some RoFormer checkpoints).
    """

    def __init__(self, hidden_size: int, num_heads: int, *, bias: bool = True, dropout: float = 0.0,
                 rotary_value: bool = False) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ConfigError(f"hidden_size ({hidden_size}) must be a multiple of num_attention_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_size = hidden_size // num_heads
        self.dropout = dropout
        self.rotary_value = rotary_value
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=bias)
        self.output = nn.Linear(hidden_size, hidden_size, bias=bias)

    def forward(
        self,
        hidden_states: torch.Tensor,
        bias: torch.Tensor | None = None,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        scale_factor: torch.Tensor | None = None,
        prev_scores: torch.Tensor | None = None,
        need_scores: bool = False,
        residual: torch.Tensor | None = None,
        kv_cache=None,
        layer_index: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend.

        Args:
            hidden_states: ``[B, L, H]``.
            bias: additive score bias broadcastable to ``[B, h, L, L]`` (0 keep, ``finfo.min`` masked) or ``None``.
            rope: ``(cos, sin)`` tables ``[L, d/2]`` to rotate q and k, or ``None``.
            scale_factor: multiplier of the ``1/√d`` scale broadcastable to ``[B, 1, L, 1]`` (entropy-invariant
                scale) or ``None``.
            prev_scores: previous layer's raw scores ``[B, h, L, L]`` (RealFormer); added before the mask.
            need_scores: return this layer's raw scores (unmasked, before softmax, after adding ``prev_scores``).
            residual: ``[B, L, H]`` added to the output projection (fused into its GEMM at inference), or ``None``.
            kv_cache: ``None``, or a key/value cache with ``update(layer_index, k, v) -> (keys, values)`` (e.g.
                :class:`kexue.generation.KVCache`): this call's keys and values ``[B, h, L, d]`` (after RoPE) are
                appended to the cached ``T`` positions and attention runs over all ``T + L`` keys; ``bias``,
                ``scale_factor`` and ``prev_scores`` then have ``T + L`` key columns.
            layer_index: this layer's slot in ``kv_cache``.
        Returns:
            ``(output [B, L, H] (+ residual), scores [B, h, L, L] or None)``.
        """
        b, length, hidden = hidden_states.shape
        qkv = fused_linear(self.qkv, hidden_states).view(b, length, 3, self.num_heads, self.head_size)
        q, k, v = qkv.unbind(dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if rope is not None:
            cos, sin = rope
            q = apply_rotary(q, cos, sin)
            k = apply_rotary(k, cos, sin)
            if self.rotary_value:
                v = apply_rotary(v, cos, sin)
        if kv_cache is not None:
            k, v = kv_cache.update(layer_index, k, v)
        if scale_factor is not None:
            q = q * scale_factor.to(q.dtype)
        p = self.dropout if self.training else 0.0
        scores = None
        if prev_scores is None and not need_scores:
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)
        else:
            scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_size))
            if prev_scores is not None:
                scores = scores + prev_scores
            masked = scores if bias is None else scores + bias
            probs = torch.softmax(masked, dim=-1)
            if p:
                probs = F.dropout(probs, p=p, training=True)
            context = torch.matmul(probs, v)
        context = context.transpose(1, 2).reshape(b, length, hidden)
        return fused_linear(self.output, context, residual=residual), scores
