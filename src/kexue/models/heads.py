"""Heads of the backbone: pooler, masked-LM head (tied to the word embeddings) and next-sentence head.

Layouts follow the Hugging Face BERT / RoFormer checkpoints (``cls.predictions.*``, ``cls.seq_relationship``,
``pooler.dense``) and junnyu's RoFormerV2 (logits ``h · E^T`` with no transform and no bias,
https://kexue.fm/archives/8998).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from kexue.models.config import TransformerConfig
from kexue.nn.norms import make_norm


def activation(name: str):
    """The activation function named like Hugging Face's ``hidden_act`` (``gelu`` = exact erf GELU)."""
    if name == "gelu":
        return F.gelu
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return partial(F.gelu, approximate="tanh")
    if name == "relu":
        return F.relu
    if name in ("silu", "swish"):
        return F.silu
    if name == "tanh":
        return torch.tanh
    raise ValueError(f"unknown activation {name!r}")


class Pooler(nn.Module):
    """``pooler_output = tanh(dense(h[:, 0]))``: ``[B, L, H] -> [B, H]``."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """First-token ([CLS]) vector through dense + tanh."""
        return torch.tanh(self.dense(hidden_states[:, 0]))


class MaskedLMHead(nn.Module):
    """Masked-LM logits ``[B, L, vocab]`` from hidden states ``[B, L, H]``, decoder tied to the word embeddings.

    BERT / RoFormer: ``LayerNorm(act(dense(h))) · E^T + bias`` (``dense``: ``H -> E``).
    RoFormerV2: ``h · E^T`` (a bias-free ``dense`` ``H -> E`` only when the embedding width differs).
    The word-embedding weight ``E`` ``[vocab, E]`` is passed to :meth:`forward`, so tying cannot break.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.simple = config.family == "roformer_v2"
        width = config.embedding_width
        if self.simple:
            self.dense = nn.Linear(config.hidden_size, width, bias=False) if width != config.hidden_size else None
            self.norm = None
            self.bias = None
        else:
            self.dense = nn.Linear(config.hidden_size, width)
            self.act = activation(config.hidden_act)
            self.norm = make_norm("layer_norm", width, config.layer_norm_eps)
            self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        """``hidden_states`` ``[B, L, H]``, ``word_embeddings`` ``[vocab, E]`` -> logits ``[B, L, vocab]``."""
        h = hidden_states
        if self.simple:
            if self.dense is not None:
                h = self.dense(h)
            return F.linear(h, word_embeddings)
        h = self.norm(self.act(self.dense(h)))
        return F.linear(h, word_embeddings, self.bias)


class NSPHead(nn.Module):
    """Next-sentence logits ``[B, 2]`` from the pooler output ``[B, H]`` (``cls.seq_relationship``)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.seq_relationship = nn.Linear(hidden_size, 2)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """``[B, H] -> [B, 2]``."""
        return self.seq_relationship(pooled)
