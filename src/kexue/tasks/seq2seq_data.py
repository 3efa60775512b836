"""UniLM seq2seq inputs: ``[CLS] source [SEP] target [SEP]`` with segment ids 0 / 1, and its collation.

The segment ids drive the UniLM mask of kexue's Transformer (``mask_kind="unilm"``, :mod:`kexue.nn.masks`): the
source ``[CLS] source [SEP]`` (segment 0) is bidirectional, the target ``target [SEP]`` (segment 1) sees the source
and its own prefix. The loss predicts each target token, the final ``[SEP]`` included, from the position before it
(the source's ``[SEP]`` predicts the first target token): label ``t`` is ``input_ids[t + 1]`` where
``token_type_ids[t + 1] == 1``.

Source: "从语言模型到Seq2Seq:Transformer如戏,全靠Mask", https://kexue.fm/archives/6933; spec arch §14.5.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from kexue.data.collate import pad_batch
from kexue.data.tokenization import Tokenizer
from kexue.errors import ConfigError

__all__ = ["content_ids", "encode_pair", "encode_source", "Seq2SeqCollator", "target_labels"]


def content_ids(tokenizer: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text without ``[CLS]`` / ``[SEP]`` and without truncation."""
    if not texts:
        return []
    rows = tokenizer(list(texts), truncation=False)["input_ids"]
    return [row[1:-1] for row in rows]


def _check_length(value: int, flag: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{flag}: expected an integer >= 1, got {value!r}")


def encode_source(source_ids: Sequence[int], cls_id: int, sep_id: int, max_source_length: int
                  ) -> dict[str, list[int]]:
    """``[CLS] source[:max_source_length] [SEP]`` with segment ids 0 (what decoding starts from).

    Raises:
        ConfigError: ``max_source_length < 1`` (``--max-source-length``).
    """
    _check_length(max_source_length, "--max-source-length")
    ids = [cls_id, *source_ids[:max_source_length], sep_id]
    return {"input_ids": ids, "token_type_ids": [0] * len(ids)}


def encode_pair(source_ids: Sequence[int], target_ids: Sequence[int], cls_id: int, sep_id: int,
                max_source_length: int, max_target_length: int) -> dict[str, list[int]]:
    """``[CLS] source [SEP] target [SEP]``, segment ids 0 on the first part and 1 on ``target [SEP]``.

    Args:
        source_ids / target_ids: token ids without special tokens (:func:`content_ids`); truncated to
            ``max_source_length`` / ``max_target_length`` tokens (the closing ``[SEP]`` is added after the cut, so a
            truncated target still ends).
    Returns:
        ``{"input_ids", "token_type_ids"}`` lists of length ``len(source) + len(target) + 3`` (after truncation).
    Raises:
        ConfigError: a length limit < 1 (naming ``--max-source-length`` / ``--max-target-length``).
    """
    _check_length(max_target_length, "--max-target-length")
    out = encode_source(source_ids, cls_id, sep_id, max_source_length)
    tgt = [*target_ids[:max_target_length], sep_id]
    out["input_ids"] += tgt
    out["token_type_ids"] += [1] * len(tgt)
    return out


def target_labels(input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                  attention_mask: torch.Tensor | None = None, ignore_index: int = -100) -> torch.Tensor:
    """Next-token labels ``[B, L - 1]``: ``input_ids[:, 1:]`` where the next position is a real target token
    (segment 1, not padding), else ``ignore_index``; pair them with ``logits[:, :-1]``."""
    keep = token_type_ids[:, 1:].bool()
    if attention_mask is not None:
        keep = keep & attention_mask[:, 1:].bool()
    return input_ids[:, 1:].masked_fill(~keep, ignore_index)


class Seq2SeqCollator:
    """Pad encoded pairs into ``{"input_ids", "token_type_ids", "attention_mask"}`` ``[B, L]`` long tensors
    (padding: the pad id, segment 0, mask 0; the key-padding mask keeps padding out of attention)."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        """The padded batch."""
        return pad_batch([{"input_ids": f["input_ids"], "token_type_ids": f["token_type_ids"]} for f in features],
                         pad_token_id=self.pad_token_id)
