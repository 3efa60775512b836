"""Tiny random kexue Transformers with an MLM head for the decoding tests."""

from __future__ import annotations

import torch

from kexue.models import Transformer, TransformerConfig

END = 3
VOCAB = 40


def tiny_model(family: str = "roformer", seed: int = 0, **overrides) -> Transformer:
    """A 2-layer, hidden-32 model with an MLM head, dropout off, in eval mode."""
    torch.manual_seed(seed)
    fields = dict(family=family, vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=37, max_position_embeddings=64, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0, mlm=True)
    fields.update(overrides)
    return Transformer(TransformerConfig(**fields)).eval()


def sources(lengths=(9, 6, 3), seed: int = 1, vocab: int = VOCAB) -> torch.Tensor:
    """Right-padded ``[CLS] ... [SEP]``-like sources ``[B, max(lengths)]`` (pad 0, ids >= 4 inside, 2 first, 3 last)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(4, vocab, (n,), generator=g)
        ids[i, 0], ids[i, n - 1] = 2, END
    return ids
