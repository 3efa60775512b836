"""The shipped Chinese base model `kexue-zh-mini`: the alias loads, it is a RoFormerV2 with trained MLM and NSP heads,
small fp16 weights, and a tokenizer that covers the corpus' characters."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

from kexue.data.tokenization import Tokenizer
from kexue.hub import resolve_model_path
from kexue.models import Transformer


@pytest.fixture(scope="module")
def zh_mini():
    return Transformer.from_pretrained("kexue-zh-mini").eval(), Tokenizer.from_pretrained("kexue-zh-mini")


def test_alias_resolves_inside_the_package_as_small_fp16_roformer_v2(zh_mini):
    folder = resolve_model_path("kexue-zh-mini")
    assert folder.parts[-3:] == ("kexue", "weights", "kexue_zh_mini")
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        # every learned tensor is fp16; the sinusoidal RoPE table written for junnyu's layout is not a weight
        dtypes = {f.get_tensor(k).dtype for k in f.keys() if not k.endswith("embed_positions.weight")}
    assert dtypes == {torch.float16}
    assert (folder / "model.safetensors").stat().st_size < 25 * 1024 * 1024
    model = zh_mini[0]
    assert model.config.family == "roformer_v2" and model.mlm_head is not None and model.nsp_head is not None
    assert not [n for n, _ in model.named_parameters() if n.endswith(".bias") and not n.startswith(("pooler", "nsp"))]
    assert (folder / "README.md").read_text(encoding="utf-8").count("MLM") >= 2


def test_tokenizer_round_trips_the_corpus_characters(zh_mini, kexue_data):
    _, tok = zh_mini
    text = (kexue_data / "zh_raw_sentences" / "CLUECorpusSmall_bert_sampled.txt").read_text(encoding="utf-8")
    sentences = [s for s in text.split("\n") if s.strip()][:2000]
    ids = tok.backend(sentences, add_special_tokens=False)["input_ids"]
    tokens = sum(len(x) for x in ids)
    assert sum(x.count(tok.unk_token_id) for x in ids) / tokens < 0.005
    exact = 0
    for s, row in zip(sentences, ids):
        if tok.unk_token_id in row:
            continue
        decoded = tok.backend.decode(row).replace(" ", "").replace("##", "")
        exact += decoded == "".join(s.lower().split())
    assert exact / len(sentences) > 0.9


def test_mlm_head_is_trained(zh_mini, kexue_data):
    """On evaluation text never trained on (afqmc dev, removed from the corpus), the MLM head recovers masked
    characters far more often than always guessing the most frequent character of the text (0.20 vs 0.08 measured)."""
    model, tok = zh_mini
    lines = (kexue_data / "afqmc" / "dev.txt").read_text(encoding="utf-8").splitlines()[:200]
    texts = [line.split("\t")[0] for line in lines]
    batch = tok.backend(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    ids = batch["input_ids"]
    gen = torch.Generator().manual_seed(0)
    real = (batch["attention_mask"] == 1) & (ids > 4)
    chosen = real & (torch.rand(ids.shape, generator=gen) < 0.15)
    masked = ids.masked_fill(chosen, tok.mask_token_id)
    with torch.no_grad():
        logits = model(masked, batch["attention_mask"]).mlm_logits.float()
    accuracy = (logits.argmax(-1)[chosen] == ids[chosen]).float().mean().item()
    most_common = Counter(ids[real].tolist()).most_common(1)[0][1] / int(real.sum())
    assert accuracy > 2 * most_common and accuracy > 0.15
