"""What every recipe shares: the backbone (pretrained or trained from scratch) and JSON-safe run records."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from kexue.data.tokenization import Tokenizer
from kexue.errors import ConfigError
from kexue.models import Transformer, TransformerConfig, load_encoder

SCRATCH = "scratch"
"""The ``--model`` value that builds a randomly initialised BERT over a character vocabulary."""


@dataclass
class ScratchModel:
    """Size of a BERT trained from scratch (``--model scratch``): a character vocabulary built from the
    training texts and a randomly initialised encoder. For data whose language has no checkpoint here."""

    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    vocab_size: int = 8000


def build_backbone(model: str, train_texts: Sequence[str], scratch: ScratchModel, max_length: int
                   ) -> tuple[nn.Module, Tokenizer]:
    """A pretrained encoder and its tokenizer (alias or folder, see :func:`kexue.models.load_encoder`), or for
    ``"scratch"`` a randomly initialised BERT over a character vocabulary built from ``train_texts``.

    Raises:
        ConfigError: ``scratch`` without training texts; an unknown alias or folder.
        CheckpointError: a supported checkpoint whose weights do not load exactly.
    """
    if model != SCRATCH:
        return load_encoder(model)[0], Tokenizer.from_pretrained(model)
    if not train_texts:
        raise ConfigError("--model scratch: needs training texts to build its vocabulary")
    tokenizer = Tokenizer.train_new(train_texts, kind="char", vocab_size=scratch.vocab_size)
    config = TransformerConfig(family="bert", vocab_size=tokenizer.vocab_size, hidden_size=scratch.hidden_size,
                               num_hidden_layers=scratch.num_hidden_layers,
                               num_attention_heads=scratch.num_attention_heads,
                               intermediate_size=scratch.intermediate_size,
                               max_position_embeddings=max(512, max_length), pad_token_id=tokenizer.pad_token_id)
    return Transformer(config), tokenizer


def jsonable(value: Any) -> Any:
    """``value`` with tuples as lists, non-string keys as strings and non-finite floats as ``None``."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
