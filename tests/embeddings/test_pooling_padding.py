"""Spec §3 property 7: appending padding leaves last-avg (P3) and first-last-avg (P4) unchanged (a known bug elsewhere
averages over the padding)."""

from __future__ import annotations

import pytest
import torch

from kexue.data.collate import pad_batch
from kexue.embeddings import SentenceEncoder


@pytest.mark.parametrize("pooling", ["last-avg", "first-last-avg", "cls"])
def test_extra_padding_changes_nothing(tiny_bert_dir, pooling):
    encoder = SentenceEncoder.from_pretrained(tiny_bert_dir, pooling=pooling).eval()
    pad = encoder.tokenizer.pad_token_id
    feats = encoder.tokenize(["A man is playing a large flute.", "A cat."])
    batch = pad_batch(feats, pad_token_id=pad)
    extra = {k: torch.cat([v, torch.full((v.shape[0], 7), pad if k == "input_ids" else 0, dtype=v.dtype)], dim=1)
             for k, v in batch.items()}
    with torch.no_grad():
        short, long = encoder(**batch), encoder(**extra)
    assert extra["input_ids"].shape[1] == batch["input_ids"].shape[1] + 7
    assert (short - long).abs().max() < 1e-6
