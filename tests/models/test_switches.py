"""Mask kinds through the whole model (UniLM causality, spec §14.5), peft LoRA targets, dtype loading."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertModel

from kexue.models import Transformer, TransformerConfig

from _tiny import TINY


def _model(**kw) -> Transformer:
    torch.manual_seed(0)
    cfg = TransformerConfig(family="roformer", vocab_size=60, hidden_size=16, num_hidden_layers=2,
                            num_attention_heads=2, intermediate_size=20, hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0, **kw)
    return Transformer(cfg).eval()


def test_unilm_causality_and_source_visibility():
    model = _model(attention_mask_kind="unilm")
    ids = torch.randint(1, 60, (1, 8))
    types = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1]])
    changed_target = ids.clone()
    changed_target[0, 6] = (ids[0, 6] % 59) + 1
    changed_source = ids.clone()
    changed_source[0, 1] = (ids[0, 1] % 59) + 1
    with torch.no_grad():
        a = model(ids, token_type_ids=types).last_hidden_state
        b = model(changed_target, token_type_ids=types).last_hidden_state
        c = model(changed_source, token_type_ids=types).last_hidden_state
    assert torch.allclose(a[0, :6], b[0, :6], atol=1e-6)  # later target token does not leak backwards
    assert (a[0, 6:] - b[0, 6:]).abs().max() > 1e-4
    assert ((a - c).abs().amax(dim=-1) > 1e-5).all()  # a source token reaches every position


def test_causal_override_per_call():
    model = _model()
    ids = torch.randint(1, 60, (1, 6))
    changed = ids.clone()
    changed[0, 5] = (ids[0, 5] % 59) + 1
    with torch.no_grad():
        a = model(ids, mask_kind="causal").last_hidden_state
        b = model(changed, mask_kind="causal").last_hidden_state
        c = model(ids).last_hidden_state
        d = model(changed).last_hidden_state
    assert torch.allclose(a[0, :5], b[0, :5], atol=1e-6)
    assert (c[0, :5] - d[0, :5]).abs().max() > 1e-5


def test_peft_lora_targets_fused_qkv():
    from peft import LoraConfig, get_peft_model

    model = _model()
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["qkv"]))
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and ".attention.qkv." in n for n in trainable)
    assert len(trainable) == 2 * model.config.num_hidden_layers
    out = peft_model(torch.randint(1, 60, (2, 5)))
    out.last_hidden_state.sum().backward()


def test_input_embeddings_and_dtype(tmp_path):
    BertModel(BertConfig(**TINY)).save_pretrained(tmp_path)
    model = Transformer.from_pretrained(tmp_path, dtype=torch.bfloat16)
    emb = model.get_input_embeddings()
    assert isinstance(emb, torch.nn.Embedding) and emb.weight.dtype == torch.bfloat16
    mask = torch.tensor([[1, 1, 1, 0]])
    out = model(torch.tensor([[2, 5, 7, 0]]), mask)
    assert out.last_hidden_state.dtype == torch.bfloat16 and torch.isfinite(out.last_hidden_state).all()
