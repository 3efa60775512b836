"""Dynamic padding: pad each batch only to its own longest sequence.

Together with length bucketing (:mod:`kexue.data.bucketing`) this keeps the padded tokens per batch
small, which is where most of the speed of sentence-pair training on CPU comes from. Standard practice
(cf. ``transformers.DataCollatorWithPadding``); the key conventions follow Hugging Face
(``input_ids``, ``attention_mask``, ``token_type_ids``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from kexue.errors import ConfigError

DEFAULT_PAD_VALUES = {"labels": -100}
"""Pad values for sequence keys other than ``*input_ids`` (which use ``pad_token_id``); others pad with 0."""


def _pad_value(key: str, pad_token_id: int, pad_values: Mapping[str, int]) -> int:
    if key in pad_values:
        return pad_values[key]
    if key.endswith("input_ids"):
        return pad_token_id
    return 0


def _mask_key(key: str) -> str:
    return key[: -len("input_ids")] + "attention_mask"


def pad_batch(features: Sequence[Mapping[str, object]], pad_token_id: int = 0, *,
              pad_to_multiple_of: int | None = None, padding_side: str = "right",
              pad_values: Mapping[str, int] | None = None) -> dict[str, torch.Tensor]:
    """Collate a list of feature dicts into padded tensors.

    Every key whose values are lists of ints becomes a ``[B, L]`` ``int64`` tensor padded to the longest
    list in the batch (rounded up to ``pad_to_multiple_of``). Keys ending in ``input_ids`` pad with
    ``pad_token_id`` and get a matching ``attention_mask`` (``a_input_ids`` -> ``a_attention_mask``; 1 = real
    token, 0 = padding) unless the features already carry one; ``labels`` pads with -100; other sequence
    keys (``token_type_ids``, ``attention_mask``) pad with 0. Scalar keys (``label``) become a ``[B]`` tensor:
    ``int64`` when every value is an int or bool, else ``float32``.

    Args:
        features: one dict per example, all with the same keys.
        pad_token_id: the tokenizer's pad id.
        pad_to_multiple_of: round the padded length up to a multiple of this (``None``: no rounding).
        padding_side: ``"right"`` (default) or ``"left"``.
        pad_values: per-key pad values overriding the defaults above.

    Returns:
        ``dict[str, Tensor]``.

    Raises:
        ConfigError: empty batch, features with different keys, a ``None`` value (e.g. an unlabelled
            pair in a training batch), a value that is neither a number nor a list of ints, a bad
            ``padding_side`` or ``pad_to_multiple_of``.
    """
    if not features:
        raise ConfigError("pad_batch: expected at least one feature, got an empty batch")
    if padding_side not in ("right", "left"):
        raise ConfigError(f"padding_side: expected 'right' or 'left', got {padding_side!r}")
    if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
        raise ConfigError(f"pad_to_multiple_of: expected a positive integer, got {pad_to_multiple_of}")
    pads = {**DEFAULT_PAD_VALUES, **(pad_values or {})}
    keys = list(features[0])
    for i, feat in enumerate(features):
        if set(feat) != set(keys):
            raise ConfigError(f"pad_batch: feature {i} has keys {sorted(feat)}, feature 0 has {sorted(keys)}")
    batch: dict[str, torch.Tensor] = {}
    for key in keys:
        values = [feat[key] for feat in features]
        for i, v in enumerate(values):
            if v is None:
                raise ConfigError(f"pad_batch: key {key!r} of feature {i} is None (unlabelled example?)")
        if all(isinstance(v, (list, tuple)) for v in values):
            seqs = [torch.as_tensor(v, dtype=torch.long) for v in values]
            batch[key] = _pad(seqs, _pad_value(key, pad_token_id, pads), pad_to_multiple_of, padding_side)
            if key.endswith("input_ids") and _mask_key(key) not in features[0]:
                masks = [torch.ones(len(v), dtype=torch.long) for v in values]
                batch[_mask_key(key)] = _pad(masks, 0, pad_to_multiple_of, padding_side)
        elif all(isinstance(v, (bool, int, float)) for v in values):
            integral = all(isinstance(v, (bool, int)) for v in values)
            batch[key] = torch.tensor(values, dtype=torch.long if integral else torch.float32)
        else:
            kinds = sorted({type(v).__name__ for v in values})
            raise ConfigError(f"pad_batch: key {key!r}: expected lists of ints or numbers, found {kinds}")
    return batch


def _pad(seqs: list[torch.Tensor], value: int, multiple: int | None, side: str) -> torch.Tensor:
    out = pad_sequence(seqs, batch_first=True, padding_value=value, padding_side=side)
    if multiple is not None and out.shape[1] % multiple:
        extra = multiple - out.shape[1] % multiple
        filler = out.new_full((out.shape[0], extra), value)
        out = torch.cat([out, filler] if side == "right" else [filler, out], dim=1)
    return out


class PaddingCollator:
    """A picklable ``collate_fn`` for :class:`torch.utils.data.DataLoader` calling :func:`pad_batch`.

    Args:
        pad_token_id, pad_to_multiple_of, padding_side, pad_values: as :func:`pad_batch`.
    """

    def __init__(self, pad_token_id: int = 0, *, pad_to_multiple_of: int | None = None,
                 padding_side: str = "right", pad_values: Mapping[str, int] | None = None) -> None:
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of
        self.padding_side = padding_side
        self.pad_values = dict(pad_values or {})

    def __call__(self, features: Sequence[Mapping[str, object]]) -> dict[str, torch.Tensor]:
        """Pad ``features`` into a batch (see :func:`pad_batch`)."""
        return pad_batch(features, self.pad_token_id, pad_to_multiple_of=self.pad_to_multiple_of,
                         padding_side=self.padding_side, pad_values=self.pad_values)
