"""Fused inference kernels for the backbone's Linear layers: bias, activation and residual add in one pass.

On CPU, ``F.linear`` runs as ``addmm``: it first copies the broadcast bias into the output, then runs the GEMM
with ``beta = 1``; the activation and the residual add are two more passes over the output. oneDNN's
``mkldnn::_linear_pointwise`` applies the bias, the activation (erf or tanh GELU, ReLU, SiLU, tanh) or the
residual add as post-ops of the GEMM itself, which saves those memory passes (measured on MiniLM's
``384 -> 1536`` GELU layer at 4096 rows, 2 threads: fp32 84.5 -> 61.0 ms, bf16 48.1 -> 32.2 ms). The GEMM
accumulates in float32 like MKL's, so fp32 results agree with ``F.linear`` to a few ulp.

The kernels have no autograd formula, so :func:`fused_linear` uses them only for inference: gradients off,
plain ``nn.Linear`` modules without hooks (a peft LoRA wrapper or a hooked module takes the ordinary path),
CPU tensors in bfloat16 with bfloat16 weights, no autocast, not under ``torch.compile``, and
``torch.backends.mkldnn.enabled`` (``with torch.backends.mkldnn.flags(enabled=False):`` turns the fusion off).

float32 stays on ``F.linear`` on purpose: oneDNN's fp32 GEMM sums the 1536 products of MiniLM's output layer in
another order than MKL's and differs from transformers' BertModel by up to 3e-5 (values up to 17), which breaks
the 1e-5 parity the tests hold. The float32 inference path is made cheaper only by exact means: the activation
and the residual add run in place on the fresh GEMM output (no extra allocation, bit-identical results).

``torch.compile`` was measured instead and does not pay here: on MiniLM in bf16 at 32 x 128 (2 threads) it took
32 s to compile and then ran at 0.67x the speed of this eager fused path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: activation names (Hugging Face ``hidden_act``) -> (oneDNN post-op, algorithm, eager function, in-place)
_ACTIVATIONS = {
    "gelu": ("gelu", "none", F.gelu, lambda t: torch.ops.aten.gelu_(t)),
    "gelu_new": ("gelu", "tanh", lambda t: F.gelu(t, approximate="tanh"),
                 lambda t: torch.ops.aten.gelu_(t, approximate="tanh")),
    "gelu_pytorch_tanh": ("gelu", "tanh", lambda t: F.gelu(t, approximate="tanh"),
                          lambda t: torch.ops.aten.gelu_(t, approximate="tanh")),
    "relu": ("relu", "", F.relu, torch.relu_),
    "silu": ("swish", "", F.silu, lambda t: F.silu(t, inplace=True)),
    "swish": ("swish", "", F.silu, lambda t: F.silu(t, inplace=True)),
    "tanh": ("tanh", "", torch.tanh, torch.tanh_),
}
FUSED_ACTIVATIONS = tuple(_ACTIVATIONS)
"""Activation names :func:`fused_linear` accepts (besides ``None``)."""


def _mkldnn_linear_available() -> bool:
    return bool(torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


_HAS_KERNEL = _mkldnn_linear_available()


def can_fuse(module: nn.Module, x: torch.Tensor, residual: torch.Tensor | None = None) -> bool:
    """Whether :func:`fused_linear` would take the oneDNN path for ``module(x)`` (see the module docstring)."""
    if not _HAS_KERNEL or type(module) is not nn.Linear or torch.is_grad_enabled():
        return False
    if module._forward_hooks or module._forward_pre_hooks or not torch.backends.mkldnn.enabled:
        return False
    if x.device.type != "cpu" or x.dtype != torch.bfloat16 or module.weight.dtype != x.dtype:
        return False
    if module.bias is not None and module.bias.dtype != x.dtype:
        return False
    if residual is not None and (residual.dtype != x.dtype or residual.shape[:-1] != x.shape[:-1]):
        return False
    if torch.is_autocast_enabled("cpu") or torch.compiler.is_compiling():
        return False
    return True


def fused_linear(module: nn.Module, x: torch.Tensor, activation: str | None = None,
                 residual: torch.Tensor | None = None) -> torch.Tensor:
    """``act(module(x))`` or ``module(x) + residual``, fused into the GEMM when possible.

    Args:
        module: the projection; any module mapping ``[..., in] -> [..., out]`` (only a plain ``nn.Linear`` is
            fused).
        x: ``[..., in]`` input.
        activation: ``None`` or one of :data:`FUSED_ACTIVATIONS` (``"gelu"`` = exact erf GELU).
        residual: ``[..., out]`` tensor added to the projection (not combined with ``activation``).
    Returns:
        ``[..., out]`` in ``x``'s dtype.
    Raises:
        ValueError: unknown ``activation``, or both ``activation`` and ``residual`` given.
    """
    if activation is not None and activation not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r} (expected one of {FUSED_ACTIVATIONS})")
    if activation is not None and residual is not None:
        raise ValueError("fused_linear: give an activation or a residual, not both")
    if can_fuse(module, x, residual):
        if residual is not None:
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual.contiguous(), module.weight,
                                                              module.bias, "add")
        post, algorithm = (_ACTIVATIONS[activation][:2] if activation is not None else ("none", ""))
        return torch.ops.mkldnn._linear_pointwise(x, module.weight, module.bias, post, [], algorithm)
    y = module(x)
    # in place on the fresh projection output when nothing can need the original (inference, plain Linear)
    inplace = (not torch.is_grad_enabled() and type(module) is nn.Linear and not module._forward_hooks
               and (residual is None or residual.shape == y.shape and residual.dtype == y.dtype))
    if activation is not None:
        return _ACTIVATIONS[activation][3 if inplace else 2](y)
    if residual is None:
        return y
    return y.add_(residual) if inplace else y + residual
