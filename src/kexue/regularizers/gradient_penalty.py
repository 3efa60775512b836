"""Gradient penalties: on inputs (embedding outputs) and on parameters, with true double back-propagation.

* Input-gradient penalty (Su's one-line alternative to FGM): ``L_total = L + ½·ε·Σ_positions ‖∂L/∂e_pos‖²``, the
  gradient taken w.r.t. the embedding-lookup **outputs** (one row per occurrence, duplicates not merged). To first
  order FGM with ``Δx = ε∇_xL`` trains ``L + (ε/2)‖∇_xL‖²`` and normalised FGM trains ``L + ε‖∇_xL‖``.
* Parameter-gradient penalty ``weight·‖∇_θL‖²`` (the penalty SGD adds implicitly); for MLPs it bounds a weighted
  input-gradient norm.

All penalties use ``create_graph=True`` so they can be added to the loss and back-propagated.

Sources: Su Jianlin, https://kexue.fm/archives/7234 (adversarial training ⇔ gradient penalty) and
https://kexue.fm/archives/8796 (input- vs parameter-gradient penalty); Ross & Doshi-Velez, arXiv 1711.09404.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from kexue.errors import ConfigError
from kexue.regularizers.fgm import resolve_embedding

__all__ = ["gradient_penalty", "embedding_gradient_penalty", "parameter_gradient_penalty", "EmbeddingOutputs",
           "capture_embedding_outputs"]


def _as_list(x: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [x] if isinstance(x, torch.Tensor) else list(x)


def gradient_penalty(loss: torch.Tensor, inputs: torch.Tensor | Sequence[torch.Tensor], weight: float = 1.0,
                     squared: bool = True) -> torch.Tensor:
    """``weight · ‖∂loss/∂inputs‖²`` (``squared=True``) or ``weight · ‖∂loss/∂inputs‖`` — differentiable.

    Args:
        loss: scalar tensor.
        inputs: tensor(s) the loss depends on (leaf or intermediate, e.g. embedding outputs
            ``[batch, seq_len, hidden]``); the norm is taken over all of them together (sum of squares).
        weight: coefficient (dimensionless; the loss's units per squared input unit).
        squared: squared norm (default) or the norm itself (the penalty normalised FGM approximates).

    Returns: scalar tensor with a graph (double backward, ``create_graph=True``).
    Raises: ConfigError if ``loss`` is not a scalar or does not depend on ``inputs``.
    Source: https://kexue.fm/archives/7234
    """
    if loss.dim() != 0:
        raise ConfigError(f"gradient_penalty expects a scalar loss, got shape {tuple(loss.shape)}")
    inputs = _as_list(inputs)
    grads = torch.autograd.grad(loss, inputs, create_graph=True, allow_unused=True)
    if all(g is None for g in grads):
        raise ConfigError("gradient_penalty: the loss does not depend on the given inputs")
    sq = sum((g * g).sum() for g in grads if g is not None)
    return weight * (sq if squared else torch.sqrt(sq))


def embedding_gradient_penalty(loss: torch.Tensor, inputs_embeds: torch.Tensor | Sequence[torch.Tensor],
                               epsilon: float = 1.0) -> torch.Tensor:
    """Su's penalty ``½·ε·Σ_positions ‖∂loss/∂e_pos‖²`` on the embedding-lookup outputs ``[batch, seq, hidden]``.

    Add it to the loss: ``loss = loss + embedding_gradient_penalty(loss, embeds, epsilon=1.0)``. With ε=0 the
    total equals the plain loss. The post's example uses ε=1 (coefficient 0.5). Source: https://kexue.fm/archives/7234
    """
    return gradient_penalty(loss, inputs_embeds, weight=0.5 * epsilon, squared=True)


def parameter_gradient_penalty(loss: torch.Tensor, params: Iterable[torch.Tensor], weight: float = 1.0
                               ) -> torch.Tensor:
    """``weight · Σ_θ ‖∂loss/∂θ‖²`` over the given parameters (those that require grad), differentiable.

    Raises ConfigError if no given parameter requires grad or the loss depends on none of them.
    Source: https://kexue.fm/archives/8796
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ConfigError("parameter_gradient_penalty: no parameter requires grad")
    return gradient_penalty(loss, params, weight=weight, squared=True)


class EmbeddingOutputs:
    """Holds the outputs of the word-embedding module recorded during a forward pass (``.outputs``: list of
    ``[batch, seq_len, hidden]`` tensors, one per call)."""

    def __init__(self) -> None:
        self.outputs: list[torch.Tensor] = []


@contextmanager
def capture_embedding_outputs(model: nn.Module) -> Iterator[EmbeddingOutputs]:
    """Record the word-embedding lookup outputs of ``model`` (an ``nn.Embedding`` or a module with
    ``get_input_embeddings()``) for the forwards run inside the block, so the penalty can differentiate w.r.t.
    them::

        with capture_embedding_outputs(model) as captured:
            loss = loss_fn(model(**batch))
        loss = loss + embedding_gradient_penalty(loss, captured.outputs, epsilon=1.0)

    The forward hook is removed on exit. Raises ConfigError when no embedding module can be found.
    """
    emb = resolve_embedding(model)
    record = EmbeddingOutputs()

    def hook(_module: nn.Module, _args: object, output: torch.Tensor) -> torch.Tensor:
        if not output.requires_grad:  # frozen embedding: make the lookup output a differentiable leaf
            output = output.detach().requires_grad_(True)
        record.outputs.append(output)
        return output

    handle = emb.register_forward_hook(hook)
    try:
        yield record
    finally:
        handle.remove()
