"""LoRA through peft (spec training.md §6)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from kexue.adapters import apply_lora, count_parameters, load_lora, merge_lora, save_lora
from kexue.errors import CheckpointError, ConfigError


def _bert():
    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, num_labels=2, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(config).eval()


_IDS = torch.tensor([[2, 5, 7, 9, 3], [2, 11, 4, 3, 0]])
_MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])


def _logits(model):
    return model(input_ids=_IDS, attention_mask=_MASK).logits


def test_zero_b_init_equals_the_base_model_and_only_adapters_get_gradients():
    base = _bert()
    reference = _logits(base).detach()
    model = apply_lora(base, ["query", "value"], r=4)
    assert torch.equal(_logits(model).detach(), reference)  # B = 0 at start: exact
    model(input_ids=_IDS, attention_mask=_MASK, labels=torch.tensor([0, 1])).loss.backward()
    for name, p in model.named_parameters():
        if "lora_" in name:
            assert p.requires_grad
        else:
            assert not p.requires_grad and p.grad is None, name
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)
    trainable, total = count_parameters(model)
    # rank 4 on query and value of 2 layers: 2·2·(16·4 + 4·16)
    assert trainable == 2 * 2 * (16 * 4 + 4 * 16)
    assert total > trainable


def test_merged_and_unmerged_outputs_agree():
    model = apply_lora(_bert(), ["query", "value", "dense"], r=2, init_lora_weights=False)
    unmerged = _logits(model).detach()
    merged_model = merge_lora(model)
    assert not any("lora_" in n for n, _ in merged_model.named_parameters())
    assert torch.allclose(_logits(merged_model).detach(), unmerged, rtol=0, atol=1e-6)


def test_save_and_load_adapter_round_trip(tmp_path):
    base = _bert()
    base_copy = copy.deepcopy(base)
    model = apply_lora(base, ["query", "value"], r=2, init_lora_weights=False)
    out = _logits(model).detach()
    folder = save_lora(model, tmp_path / "adapter")
    assert (folder / "adapter_config.json").is_file()
    loaded = load_lora(base_copy, folder)
    assert torch.allclose(_logits(loaded).detach(), out, rtol=0, atol=1e-7)
    with pytest.raises(CheckpointError):
        load_lora(_bert(), tmp_path / "missing")


def test_plain_module_and_bad_targets():
    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)
            self.head = nn.Linear(4, 1)

        def forward(self, x):
            return self.head(torch.tanh(self.proj(x)))

    model = apply_lora(Plain(), ["proj"], r=1, modules_to_save=["head"])
    x = torch.randn(3, 4)
    model(x).sum().backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert any("lora_B" in n for n in grads) and any("head" in n for n in grads)
    assert not any(n.endswith("proj.base_layer.weight") for n in grads)
    with pytest.raises(ConfigError):
        apply_lora(Plain(), ["nonexistent"])
    with pytest.raises(ConfigError):
        apply_lora(Plain(), ["proj"], r=0)
