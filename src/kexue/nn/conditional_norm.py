"""Conditional LayerNorm: a condition vector shifts the gain and offset of every norm of a pretrained model.

``γ(c) = γ_0 + W_γ h`` and ``β(c) = β_0 + W_β h`` with ``h = c`` (or ``h = act(W_h c)``, bert4keras'
``layer_norm_cond_hidden_size``); ``y = γ(c) ⊙ x̂ + β(c)`` with ``x̂`` the normalised input. ``W_γ`` and ``W_β``
(``H x C``, no bias) start at zero, and the output is computed as ``norm(x) + (W_γ h) ⊙ x̂ + W_β h``, so at
initialisation every converted model equals the pretrained one bit for bit, for every condition. RoFormerV2's
scale-free RMS norm (no ``γ_0``, ``β_0``) becomes ``y = (1 + W_γ h) ⊙ x̂ + W_β h`` with ``x̂ = x / rms(x)``.

A condition ``c`` ``[B, C]`` modulates every position of ``x`` ``[B, L, H]`` alike. It is given to a converted
model with the :func:`conditioned` context manager (the backbone's own forward is unchanged)::

    convert_norms_to_conditional(backbone, cond_dim=128)
    with conditioned(backbone, task_embedding(task_ids)):
        out = backbone(input_ids, attention_mask)

Sources: "搜狐文本匹配:基于条件LayerNorm的多任务baseline", https://kexue.fm/archives/8337 (spec §5);
"基于Conditional Layer Normalization的条件文本生成", https://kexue.fm/archives/7124; bert4keras
``LayerNormalization(conditional=True)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from kexue.errors import ConfigError
from kexue.nn.norms import ScaleFreeRMSNorm

_ACTIVATIONS = {"linear": nn.Identity, "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class ConditionalLayerNorm(nn.Module):
    """A norm (``nn.LayerNorm`` over the last axis, or :class:`~kexue.nn.norms.ScaleFreeRMSNorm`) whose gain and
    offset depend on a condition.

    Args:
        norm: the pretrained norm, kept as is (``self.norm``; its ``γ_0``, ``β_0`` are its own parameters).
        cond_dim: ``C``, the width of the condition.
        hidden_units: optional width of the hidden projection ``h = act(W_h c)`` (no bias, Xavier-uniform
            initialised, one per norm as in bert4keras); ``None`` = ``h = c``.
        hidden_activation: ``linear``, ``relu``, ``gelu`` or ``tanh`` for the hidden projection.
        width: ``H``; required for a scale-free norm (it has no parameter that tells it), checked for a LayerNorm.

    Attributes:
        gamma_dense / beta_dense: ``nn.Linear(C or hidden_units, H, bias=False)``, zero-initialised.
        cond: the condition of the current forward (set by :func:`conditioned`).

    Raises:
        ConfigError: an unsupported norm (LayerNorm over more than one axis), ``cond_dim`` or ``hidden_units`` < 1,
            an unknown activation.
    """

    def __init__(self, norm: nn.Module, cond_dim: int, hidden_units: int | None = None,
                 hidden_activation: str = "linear", width: int | None = None) -> None:
        super().__init__()
        if isinstance(norm, nn.LayerNorm):
            if len(norm.normalized_shape) != 1:
                raise ConfigError(f"conditional norm: LayerNorm over {tuple(norm.normalized_shape)}; only a norm over "
                                  "the last axis is supported")
            if width is not None and width != int(norm.normalized_shape[0]):
                raise ConfigError(f"conditional norm: width {width} != the LayerNorm's {norm.normalized_shape[0]}")
            width = int(norm.normalized_shape[0])
        elif isinstance(norm, ScaleFreeRMSNorm):
            if width is None or width < 1:
                raise ConfigError("conditional norm: a scale-free RMS norm needs its width (width=H)")
        else:
            raise ConfigError(f"conditional norm: expected nn.LayerNorm or ScaleFreeRMSNorm, got {type(norm).__name__}")
        if cond_dim < 1 or (hidden_units is not None and hidden_units < 1):
            raise ConfigError(f"conditional norm: cond_dim and hidden_units must be >= 1, got {cond_dim}, "
                              f"{hidden_units}")
        if hidden_activation not in _ACTIVATIONS:
            raise ConfigError(f"conditional norm: hidden_activation must be one of {', '.join(_ACTIVATIONS)}, got "
                              f"{hidden_activation!r}")
        self.norm = norm
        self.cond_dim = cond_dim
        self.width = width
        self.hidden = None
        in_dim = cond_dim
        if hidden_units is not None:
            self.hidden = nn.Sequential(nn.Linear(cond_dim, hidden_units, bias=False), _ACTIVATIONS[hidden_activation]())
            nn.init.xavier_uniform_(self.hidden[0].weight)
            in_dim = hidden_units
        self._in_dim = in_dim
        self._build(width)
        self.cond: torch.Tensor | None = None

    def _build(self, width: int) -> None:
        ref = next(self.norm.parameters(), None)
        kwargs = {} if ref is None else {"device": ref.device, "dtype": ref.dtype}
        self.gamma_dense = nn.Linear(self._in_dim, width, bias=False, **kwargs)
        self.beta_dense = nn.Linear(self._in_dim, width, bias=False, **kwargs)
        nn.init.zeros_(self.gamma_dense.weight)
        nn.init.zeros_(self.beta_dense.weight)
        self.width = width

    def normalized(self, x: torch.Tensor) -> torch.Tensor:
        """``x̂``: ``(x - mean) / sqrt(var + eps)`` (LayerNorm) or ``x / rms(x)`` (scale-free norm), same shape."""
        if isinstance(self.norm, nn.LayerNorm):
            return F.layer_norm(x, self.norm.normalized_shape, None, None, self.norm.eps)
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        return (xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.norm.eps)).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, ..., H]`` -> same shape, ``norm(x) + (W_γ h) ⊙ x̂ + W_β h`` with :attr:`cond` ``[B, C]``.

        Raises:
            RuntimeError: no condition was set (run the model inside :func:`conditioned`).
            ValueError: the condition is not ``[B, C]`` for this batch.
        """
        cond = self.cond
        if cond is None:
            raise RuntimeError("ConditionalLayerNorm: no condition set; run the model inside "
                               "kexue.nn.conditional_norm.conditioned(model, cond)")
        if cond.ndim != 2 or cond.shape[0] != x.shape[0] or cond.shape[1] != self.cond_dim:
            raise ValueError(f"ConditionalLayerNorm: expected a condition [{x.shape[0]}, {self.cond_dim}], got "
                             f"{tuple(cond.shape)}")
        base = self.norm(x)
        h = cond.to(self.gamma_dense.weight.dtype)
        if self.hidden is not None:
            h = self.hidden(h)
        view = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
        gamma = self.gamma_dense(h).view(view)
        beta = self.beta_dense(h).view(view)
        return base + (gamma * self.normalized(x) + beta).to(base.dtype)

    def extra_repr(self) -> str:
        return f"cond_dim={self.cond_dim}, hidden={'none' if self.hidden is None else self._in_dim}"


def convert_norms_to_conditional(model: nn.Module, cond_dim: int, hidden_units: int | None = None,
                                 hidden_activation: str = "linear") -> list[ConditionalLayerNorm]:
    """Replace every ``nn.LayerNorm`` and :class:`~kexue.nn.norms.ScaleFreeRMSNorm` of ``model`` (in place) by a
    :class:`ConditionalLayerNorm` wrapping it; returns the new modules (in ``named_modules`` order).

    The pretrained ``γ_0``/``β_0`` stay the wrapped norm's own parameters (their state-dict keys gain ``.norm``).
    Works on kexue's :class:`~kexue.models.Transformer` and on ``transformers`` models alike.

    Raises:
        ConfigError: no norm found (nothing to condition), or the errors of :class:`ConditionalLayerNorm`.
    """
    targets = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
               if isinstance(child, (nn.LayerNorm, ScaleFreeRMSNorm))]
    if not targets:
        raise ConfigError("--conditional-ln: the model has no LayerNorm or RMS norm to condition")
    converted = []
    for parent, name, child in targets:
        width = None
        if isinstance(child, ScaleFreeRMSNorm):  # no parameter tells the width: the model's config does
            width = _rms_width(model, parent)
        module = ConditionalLayerNorm(child, cond_dim, hidden_units, hidden_activation, width)
        setattr(parent, name, module)
        converted.append(module)
    return converted


def _rms_width(model: nn.Module, parent: nn.Module) -> int:
    """Width of a scale-free norm of kexue's Transformer: the embedding width inside the embeddings, else
    ``hidden_size``."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "hidden_size"):
        raise ConfigError("--conditional-ln: a scale-free RMS norm in a model without a config.hidden_size")
    if hasattr(parent, "word_embeddings") and hasattr(config, "embedding_width"):
        return int(config.embedding_width)
    return int(config.hidden_size)


@contextmanager
def conditioned(model: nn.Module, cond: torch.Tensor) -> Iterator[nn.Module]:
    """Within the block, every :class:`ConditionalLayerNorm` of ``model`` uses ``cond`` ``[B, C]``; restored after.

    Raises:
        ConfigError: ``model`` has no conditional norm.
    """
    norms = [m for m in model.modules() if isinstance(m, ConditionalLayerNorm)]
    if not norms:
        raise ConfigError("conditioned: the model has no conditional norm (convert it with "
                          "convert_norms_to_conditional first)")
    saved = [m.cond for m in norms]
    for m in norms:
        m.cond = cond
    try:
        yield model
    finally:
        for m, c in zip(norms, saved):
            m.cond = c
