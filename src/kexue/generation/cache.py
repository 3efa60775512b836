"""The key/value cache of incremental decoding with kexue's :class:`~kexue.models.Transformer`.

At step ``t`` a decoder needs the keys and values of every earlier position in every layer; recomputing them
re-encodes the whole prefix (what bert4keras' ``AutoRegressiveDecoder`` does, bert4keras#217/#193/#298). The cache
keeps them, together with the key-padding mask and the segment ids of the cached positions, so the model can build
the causal / UniLM mask rows of the new positions. For UniLM the source states never depend on the target (the
mask forbids source -> target attention, https://kexue.fm/archives/6933), so the source is encoded once and its
keys and values serve every target step.
"""

from __future__ import annotations

import torch


class KVCache:
    """Per-layer keys and values ``[B, h, T, d]`` plus ``attention_mask`` / ``token_type_ids`` ``[B, T]``.

    Pass it as ``Transformer(..., past_key_values=cache)``; the model appends its new positions in place. Rows can
    be reordered, dropped or repeated with :meth:`select` (beam search, finished examples, one source for several
    beams or samples).

    Args:
        num_layers: number of attention layers of the model.
    """

    def __init__(self, num_layers: int) -> None:
        self.num_layers = num_layers
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.attention_mask: torch.Tensor | None = None
        self.token_type_ids: torch.Tensor | None = None

    @property
    def length(self) -> int:
        """Number of cached positions ``T`` (0 when empty)."""
        return 0 if self.attention_mask is None else int(self.attention_mask.shape[1])

    def append_inputs(self, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new positions' padding mask and segment ids ``[B, L]``; return all ``[B, T + L]`` of each."""
        if self.attention_mask is None:
            self.attention_mask, self.token_type_ids = attention_mask, token_type_ids
        else:
            self.attention_mask = torch.cat((self.attention_mask, attention_mask.to(self.attention_mask.dtype)), 1)
            self.token_type_ids = torch.cat((self.token_type_ids, token_type_ids.to(self.token_type_ids.dtype)), 1)
        return self.attention_mask, self.token_type_ids

    def update(self, layer_index: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append layer ``layer_index``'s new ``key`` / ``value`` ``[B, h, L, d]``; return all ``[B, h, T + L, d]``."""
        if self.keys[layer_index] is not None:
            key = torch.cat((self.keys[layer_index], key), dim=2)
            value = torch.cat((self.values[layer_index], value), dim=2)
        self.keys[layer_index], self.values[layer_index] = key, value
        return key, value

    def _map(self, fn) -> None:
        self.keys = [None if t is None else fn(t) for t in self.keys]
        self.values = [None if t is None else fn(t) for t in self.values]
        if self.attention_mask is not None:
            self.attention_mask = fn(self.attention_mask)
            self.token_type_ids = fn(self.token_type_ids)

    def select(self, rows: torch.Tensor) -> None:
        """Keep rows ``rows`` (``[N]`` long indices into the batch, repeats allowed), in that order."""
        self._map(lambda t: t.index_select(0, rows))
