"""One decoding step of kexue's Transformer, with or without the key/value cache.

:class:`ModelStepper` hides the difference between the two ways of computing next-token logits:

- cached: the source (UniLM) or prompt (causal) is encoded once into a :class:`~kexue.generation.cache.KVCache`;
  each step feeds only the new token, at position ``source_length + t`` of its row;
- uncached: each step re-encodes ``[source (right-padded)] + [target so far]`` with the same per-row positions
  and padding mask (bert4keras' ``AutoRegressiveDecoder`` way; the reference the cached path must equal).

Rows of different source lengths are right-padded; the padding is masked out as keys, and target positions
continue from each row's own length, so a batched row decodes exactly like the same example alone.
"""

from __future__ import annotations

import torch

from kexue.errors import ConfigError
from kexue.generation.cache import KVCache

MODES = ("unilm", "causal")


def lm_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """The model's tied MLM-head logits ``[..., V]`` of hidden states ``[..., H]``."""
    return model.mlm_head(hidden, model.embeddings.word_embeddings.weight)


class ModelStepper:
    """Next-token logits of a kexue :class:`~kexue.models.Transformer` for a batch of growing targets.

    Args:
        model: a Transformer with an MLM head (``config.mlm``); used in eval mode, without gradients.
        mode: ``"unilm"`` (source segment 0, target segment 1, UniLM mask) or ``"causal"`` (lower-triangular mask,
            target segment = the row's last source segment).
        use_cache: keep keys/values (True) or re-encode the whole sequence at every step (False).
    Raises:
        ConfigError: unknown ``mode``; a model without an MLM head.
    """

    def __init__(self, model, mode: str = "unilm", use_cache: bool = True) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
        if getattr(model, "mlm_head", None) is None:
            raise ConfigError("generation needs a model with an MLM head (TransformerConfig(mlm=True), or a "
                              "checkpoint with cls.predictions.*)")
        self.model, self.mode, self.use_cache = model, mode, use_cache
        self.cache: KVCache | None = None

    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
              ) -> torch.Tensor:
        """Encode the sources ``[B, L]`` (right-padded); return the first target token's logits ``[B, V]``.

        The logits come from each row's last real source token (``[SEP]`` in UniLM).
        """
        batch, length = input_ids.shape
        device = input_ids.device
        self.source_lengths = attention_mask.long().sum(dim=1)
        if bool((self.source_lengths == 0).any()):
            raise ConfigError("every source needs at least one token (found an all-padding row)")
        self.target_type = (torch.ones_like(self.source_lengths) if self.mode == "unilm"
                            else token_type_ids.gather(1, (self.source_lengths - 1)[:, None])[:, 0])
        self.steps = 0
        positions = torch.arange(length, device=device).expand(batch, length)
        if self.use_cache:
            self.cache = KVCache(len(self.model.layers))
        else:
            self.source = (input_ids, attention_mask, token_type_ids)
            self.targets = input_ids.new_zeros((batch, 0))
        out = self.model(input_ids, attention_mask, token_type_ids, mask_kind=self.mode, position_ids=positions,
                         past_key_values=self.cache, logits_to_keep=0)
        last = out.last_hidden_state[torch.arange(batch, device=device), self.source_lengths - 1]
        return lm_logits(self.model, last)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append ``tokens`` ``[N]`` (one per current row) to the targets; return the next logits ``[N, V]``."""
        positions = (self.source_lengths + self.steps)[:, None]
        self.steps += 1
        types = self.target_type[:, None]
        if self.use_cache:
            out = self.model(tokens[:, None], torch.ones_like(tokens)[:, None], types, mask_kind=self.mode,
                             position_ids=positions, past_key_values=self.cache, logits_to_keep=1)
            return out.mlm_logits[:, -1]
        self.targets = torch.cat((self.targets, tokens[:, None]), dim=1)
        ids, mask, src_types = self.source
        steps = self.targets.shape[1]
        length = ids.shape[1]
        all_positions = torch.cat((torch.arange(length, device=ids.device).expand(ids.shape[0], length),
                                   self.source_lengths[:, None] + torch.arange(steps, device=ids.device)), dim=1)
        out = self.model(torch.cat((ids, self.targets), 1), torch.cat((mask, torch.ones_like(self.targets)), 1),
                         torch.cat((src_types, types.expand(-1, steps)), 1), mask_kind=self.mode,
                         position_ids=all_positions, logits_to_keep=1)
        return out.mlm_logits[:, -1]

    def select(self, rows: torch.Tensor) -> None:
        """Keep rows ``rows`` ``[N]`` (long; reorder, drop or repeat) of every per-row state."""
        self.source_lengths = self.source_lengths.index_select(0, rows)
        self.target_type = self.target_type.index_select(0, rows)
        if self.use_cache:
            self.cache.select(rows)
        else:
            self.source = tuple(t.index_select(0, rows) for t in self.source)
            self.targets = self.targets.index_select(0, rows)

    def repeat_rows(self, repeats: int) -> None:
        """Repeat each row ``repeats`` times (beams or samples of one source share its encoding)."""
        if repeats == 1:
            return
        rows = torch.arange(self.source_lengths.shape[0], device=self.source_lengths.device)
        self.select(rows.repeat_interleave(repeats))
