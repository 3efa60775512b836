"""Output containers of the backbone."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TransformerOutput:
    """What :class:`kexue.models.Transformer` returns.

    Attributes:
        last_hidden_state: ``[batch, seq_len, hidden]`` float, the last block's output.
        hidden_states: ``num_layers + 1`` tensors ``[batch, seq_len, hidden]``: index 0 is the embedding
            output, index ``i`` the output of block ``i`` (Hugging Face's convention); ``None`` unless
            ``output_hidden_states=True``.
        pooler_output: ``[batch, hidden]``, tanh(dense(h[CLS])) when the model has a pooler, else ``None``.
        mlm_logits: ``[batch, seq_len, vocab]`` when the model has a masked-LM head, else ``None``.
        nsp_logits: ``[batch, 2]`` when the model has an NSP head, else ``None``.
        attention_scores: per-layer pre-softmax scores ``[batch, heads, seq, seq]`` when asked for
            (``output_attention_scores=True``), else ``None``.
    """

    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    pooler_output: torch.Tensor | None = None
    mlm_logits: torch.Tensor | None = None
    nsp_logits: torch.Tensor | None = None
    attention_scores: tuple[torch.Tensor, ...] | None = None
