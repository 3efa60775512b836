"""kexue.regularizers: adversarial training and gradient penalties as plain functions/classes.

* :class:`FGM` — FGM on the word-embedding matrix (https://kexue.fm/archives/7234);
* :func:`gradient_penalty`, :func:`embedding_gradient_penalty`, :func:`parameter_gradient_penalty`,
  :func:`capture_embedding_outputs` — double-backward penalties (https://kexue.fm/archives/7234,
  https://kexue.fm/archives/8796).

They never import :mod:`kexue.train`; the Trainer wraps them in hooks.
"""

from kexue.regularizers.fgm import FGM, resolve_embedding
from kexue.regularizers.gradient_penalty import (
    EmbeddingOutputs,
    capture_embedding_outputs,
    embedding_gradient_penalty,
    gradient_penalty,
    parameter_gradient_penalty,
)

__all__ = [
    "FGM",
    "resolve_embedding",
    "gradient_penalty",
    "embedding_gradient_penalty",
    "parameter_gradient_penalty",
    "EmbeddingOutputs",
    "capture_embedding_outputs",
]
