"""Entropy-normalized sampling in ``transformers.generate()``: a ``LogitsProcessor`` that sets every step's
next-token distribution to a fixed entropy (https://kexue.fm/archives/8829).

Kept apart from :mod:`kexue.analysis.entropy` because importing ``transformers`` takes seconds.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

from kexue.analysis.entropy import EntropyWarper


class EntropyNormalizationLogitsProcessor(LogitsProcessor):
    """``transformers`` logits processor: ``scores`` ``[B, V]`` -> log-probabilities of entropy ``target_entropy``.

    Pass it in ``model.generate(..., do_sample=True, logits_processor=LogitsProcessorList([proc]))``; put it after
    processors that ban tokens (their ``-inf`` stay ``-inf``) and leave ``top_k=0, top_p=1.0, temperature=1.0``
    so the fixed entropy is what is sampled from.

    Args:
        target_entropy: ``H*`` in nats (≥ 0; clipped per row to ``log`` of the allowed tokens).
        n_iter: Newton steps per decoding step (8; see :class:`kexue.analysis.entropy.EntropyWarper`).
    Raises:
        ConfigError: ``target_entropy < 0`` or ``n_iter < 0``.
    """

    def __init__(self, target_entropy: float, n_iter: int = 8) -> None:
        self._warper = EntropyWarper(target_entropy, n_iter)
        self.target_entropy = self._warper.target_entropy
        self.n_iter = self._warper.n_iter

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """``input_ids`` ``[B, T]`` (unused), ``scores`` ``[B, V]`` -> ``[B, V]`` processed scores."""
        return self._warper(input_ids, scores)
