"""A Hugging Face encoder that kexue's Transformer does not cover goes through transformers.AutoModel."""

from __future__ import annotations

import numpy as np
import torch

from kexue.data.tokenization import Tokenizer
from kexue.embeddings import SentenceEncoder
from kexue.models import HFEncoder


def test_distilbert_folder_trains_saves_and_reloads(tmp_path):
    from transformers import DistilBertConfig, DistilBertModel

    folder = tmp_path / "distil"
    torch.manual_seed(0)
    tok = Tokenizer.from_pretrained("minilm")
    DistilBertModel(DistilBertConfig(vocab_size=tok.vocab_size, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                     max_position_embeddings=64)).save_pretrained(folder)
    tok.save_pretrained(folder)
    enc = SentenceEncoder.from_pretrained(folder, pooling="first-last-avg")
    assert isinstance(enc.backbone, HFEncoder)
    texts = ["a cat sits on the mat", "dogs bark"]
    before = enc.encode(texts)
    # The first-last-avg rule uses the first block's output, not the embeddings (spec §0 pitfall).
    ids = enc.tokenizer(texts[:1])
    out = enc.backbone(torch.tensor(ids["input_ids"]), torch.tensor(ids["attention_mask"]), output_hidden_states=True)
    expected = (out.hidden_states[1].mean(1) + out.hidden_states[-1].mean(1)) / 2
    assert np.allclose(before[0], expected[0].detach().numpy(), atol=1e-6)
    enc.save_pretrained(tmp_path / "saved")
    again = SentenceEncoder.from_pretrained(tmp_path / "saved")
    assert again.pooling == "first-last-avg"
    assert np.allclose(again.encode(texts), before, atol=1e-6)
