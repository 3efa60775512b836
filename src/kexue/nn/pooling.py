"""Sentence-vector pooling: one vector per sequence from an encoder's hidden states.

The four modes are the pooling ids P1–P4 of the CN-STS tables in "CoSENT(一)",
https://kexue.fm/archives/8847, and "无监督语义相似度哪家强?我们做了个比较全面的评测",
https://kexue.fm/archives/8321 (spec §0):

========================  ===========================================================================
mode                      vector
========================  ===========================================================================
``cls`` (P1)              last layer at position 0 (``[CLS]``)
``pooler`` (P2)           the pretrained pooler Dense applied to ``[CLS]`` (see below)
``last-avg`` (P3)         masked mean of the last layer over real tokens
``first-last-avg`` (P4)   mean of the masked means of ``hidden_states[1]`` (first block's output) and
                          ``hidden_states[-1]``; ``hidden_states[0]`` is the embedding output and is
                          *not* used (spec §0 pitfall)
========================  ===========================================================================

About ``pooler``: the reference builds the pooler with ``with_pool='linear'``, i.e. Dense **without** tanh.
Pass that Dense as ``pooler_dense`` (``Pooling(..., pooler_dense=model.pooler.dense)``) to get exactly P2.
Without it the model's own ``pooler_output`` is used, which in Hugging Face BERT and kexue's
``Transformer`` is ``tanh(Dense(h_cls))``.

Works with kexue's :class:`~kexue.models.outputs.TransformerOutput` and with Hugging Face model outputs
(same attribute names: ``last_hidden_state``, ``hidden_states``, ``pooler_output``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from kexue.errors import ConfigError

POOLING_MODES = ("cls", "pooler", "last-avg", "first-last-avg")
"""The pooling modes, spec §0 P1–P4."""


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens of each sequence.

    Args:
        hidden: ``[B, L, H]`` float.
        attention_mask: ``[B, L]``, 1 (or True) = real token, 0 = padding.

    Returns:
        ``[B, H]`` in ``hidden``'s dtype (accumulated in float32, so fp16/bf16 sums do not overflow).

    Raises:
        ValueError: shapes do not match, or a row has no real token.
    """
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"attention_mask: expected shape {tuple(hidden.shape[:2])}, "
                         f"got {tuple(attention_mask.shape)}")
    mask = attention_mask.to(torch.float32).unsqueeze(-1)
    counts = mask.sum(dim=1)
    if bool((counts == 0).any()):
        raise ValueError("attention_mask: a sequence has no real token (all zeros); cannot average it")
    summed = (hidden.to(torch.float32) * mask).sum(dim=1)
    return (summed / counts).to(hidden.dtype)


def pool(output: object, attention_mask: torch.Tensor, mode: str, *,
         pooler_dense: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Pool an encoder output into sentence vectors (spec §0, P1–P4).

    Args:
        output: an object with ``last_hidden_state`` ``[B, L, H]``, and, for the modes that need them,
            ``hidden_states`` (tuple of ``num_layers + 1`` tensors ``[B, L, H]``, index 0 = embeddings) and
            ``pooler_output`` ``[B, H]``.
        attention_mask: ``[B, L]``, 1 = real token.
        mode: one of :data:`POOLING_MODES`.
        pooler_dense: for ``pooler``: the pretrained pooler's Dense (``[B, H] -> [B, H]``), applied to the
            ``[CLS]`` state with no tanh as in the reference; ``None`` uses ``output.pooler_output``.

    Returns:
        ``[B, H]`` sentence vectors (not normalized), dtype of the hidden states.

    Raises:
        ConfigError: unknown ``mode``; ``pooler`` without ``pooler_dense`` on a model with no
            ``pooler_output``; ``first-last-avg`` without ``hidden_states`` (call the model with
            ``output_hidden_states=True``) or with fewer than one block.
    """
    if mode not in POOLING_MODES:
        raise ConfigError(f"pooling: expected one of {', '.join(POOLING_MODES)}, got {mode!r}")
    last = output.last_hidden_state
    if mode == "cls":
        return last[:, 0]
    if mode == "pooler":
        if pooler_dense is not None:
            return pooler_dense(last[:, 0])
        pooled = getattr(output, "pooler_output", None)
        if pooled is None:
            raise ConfigError("pooling 'pooler': the model output has no pooler_output (a model without a "
                              "pooler, e.g. MiniLM sentence-transformers checkpoints); pass pooler_dense or "
                              "choose cls, last-avg or first-last-avg")
        return pooled
    if mode == "last-avg":
        return masked_mean(last, attention_mask)
    hidden_states = getattr(output, "hidden_states", None)
    if hidden_states is None:
        raise ConfigError("pooling 'first-last-avg': the model output has no hidden_states; run the model "
                          "with output_hidden_states=True")
    if len(hidden_states) < 2:
        raise ConfigError(f"pooling 'first-last-avg': expected hidden_states for the embeddings and at least "
                          f"one block, got {len(hidden_states)} tensor(s)")
    first = masked_mean(hidden_states[1], attention_mask)
    final = masked_mean(hidden_states[-1], attention_mask)
    return (first + final) / 2


class Pooling(nn.Module):
    """:func:`pool` as a module.

    Args:
        mode: one of :data:`POOLING_MODES` (spec §0, P1–P4; https://kexue.fm/archives/8847).
        pooler_dense: for ``pooler``, the pretrained pooler Dense to apply without tanh (registered as a
            submodule when it is an ``nn.Module``); ``None`` uses the model's ``pooler_output``.

    Raises:
        ConfigError: unknown ``mode`` (at construction), or as :func:`pool` when called.
    """

    def __init__(self, mode: str, pooler_dense: nn.Module | None = None) -> None:
        super().__init__()
        if mode not in POOLING_MODES:
            raise ConfigError(f"pooling: expected one of {', '.join(POOLING_MODES)}, got {mode!r}")
        self.mode = mode
        self.pooler_dense = pooler_dense

    @property
    def needs_hidden_states(self) -> bool:
        """Whether the encoder must be run with ``output_hidden_states=True``."""
        return self.mode == "first-last-avg"

    def forward(self, output: object, attention_mask: torch.Tensor) -> torch.Tensor:
        """Sentence vectors ``[B, H]`` from an encoder output and its ``[B, L]`` attention mask."""
        return pool(output, attention_mask, self.mode, pooler_dense=self.pooler_dense)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
