"""Sentence embeddings: a backbone plus pooling, encoding, saving and export."""

from kexue.embeddings.encoder import SentenceEncoder

__all__ = ["SentenceEncoder"]
