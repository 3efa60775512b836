"""The same trie constraint for Hugging Face ``transformers``' ``generate()``.

Two ways, both driven by :class:`~kexue.generation.constraints.TrieConstraint`'s allowed sets:

- :func:`trie_prefix_allowed_tokens_fn`: a ``prefix_allowed_tokens_fn(batch_id, input_ids) -> list[int]`` for
  ``model.generate(..., prefix_allowed_tokens_fn=fn)`` (transformers masks everything else with ``-inf``);
- :class:`HFTrieLogitsProcessor`: a ``transformers.LogitsProcessor`` that applies kexue's masking itself, with its
  guarantees (an allowed set whose scores are all ``-inf`` is made uniform instead of letting an unconstrained
  or NaN distribution through; cf. transformers#22890, #28922).

The prompt (decoder-only models) or the decoder start token (encoder-decoder models) is skipped: the trie prefix
of a row is ``input_ids[row, prompt_length:]``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import LogitsProcessor

from kexue.generation.constraints import TrieConstraint
from kexue.generation.trie import TokenTrie


def trie_prefix_allowed_tokens_fn(trie: TokenTrie, end_token_id: int, prompt_length: int,
                                  on_empty: str = "end") -> Callable[[int, torch.Tensor], list[int]]:
    """A ``prefix_allowed_tokens_fn`` for ``transformers`` ``generate()`` constrained to ``trie``'s keys + end.

    Args:
        trie: the allowed outputs; end_token_id: the model's ``eos_token_id``.
        prompt_length: tokens of ``input_ids`` before the generated part (the padded prompt length for a
            decoder-only model, 1 for an encoder-decoder's decoder start token).
        on_empty: see :class:`TrieConstraint` (``"end"`` also covers rows that transformers keeps padding after
            their end token).
    """
    constraint = TrieConstraint(trie, end_token_id, on_empty=on_empty)

    def allowed(batch_id: int, input_ids: torch.Tensor) -> list[int]:
        return constraint.allowed(input_ids[prompt_length:].tolist())

    return allowed


class HFTrieLogitsProcessor(LogitsProcessor):
    """``transformers`` logits processor: ``scores [batch·beams, V]`` restricted to the trie (kexue's masking).

    Pass it as ``model.generate(..., logits_processor=LogitsProcessorList([HFTrieLogitsProcessor(...)]))``.
    Args: as :func:`trie_prefix_allowed_tokens_fn`.
    """

    def __init__(self, trie: TokenTrie, end_token_id: int, prompt_length: int, on_empty: str = "end") -> None:
        self.constraint = TrieConstraint(trie, end_token_id, on_empty=on_empty)
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows = torch.arange(input_ids.shape[0])
        return self.constraint(input_ids[:, self.prompt_length:], scores, rows).to(scores.dtype)
