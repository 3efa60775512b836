"""The MLM losses compared by bench/pretrain_speed.py are the same number: kexue's masked-positions-only head, its
full-logits variant and transformers' ``BertForMaskedLM(labels=...)`` on the same BERT weights (eval mode)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import BertConfig, BertForMaskedLM

from kexue.models import Transformer
from kexue.tasks.pretrain_model import PretrainingModel

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from pretrain_speed import full_logits_loss, make_batch  # noqa: E402


def test_masked_head_full_logits_and_transformers_losses_agree(tmp_path):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=8000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=160, pad_token_id=0)
    hf = BertForMaskedLM(config).eval()
    with torch.no_grad():                       # a non-zero vocabulary bias, so that the head's bias is exercised
        hf.cls.predictions.bias.normal_(0, 0.5)
    hf.save_pretrained(tmp_path)
    model = PretrainingModel.from_transformer(Transformer.from_pretrained(tmp_path), nsp=False).eval()
    batch = make_batch(3, seed=1)
    labelled = batch["labels"] != -100
    assert int(labelled.sum()) == 3 * 19        # round(0.15 * 128) labelled positions per row
    with torch.no_grad():
        reference = hf(**batch).loss
        masked = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], batch["labels"])["loss"]
        full = full_logits_loss(model, batch)
        # an independent transcription: log-softmax of transformers' logits at the labelled positions
        logits = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[labelled]
        by_hand = -logits.log_softmax(-1).gather(1, batch["labels"][labelled][:, None]).mean()
    assert torch.allclose(reference, by_hand, atol=1e-6)
    assert torch.allclose(masked, reference, atol=1e-5), (masked, reference)
    assert torch.allclose(full, reference, atol=1e-5), (full, reference)
