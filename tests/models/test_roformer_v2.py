"""RoFormerV2 (https://kexue.fm/archives/8998) in junnyu's PyTorch layout, checked against the spec formulas.

No transformers class exists, so a hand-built state dict with junnyu's key names is loaded and the output is
compared with a direct implementation of the spec written here (RMS norm without gain, no biases, RoPE).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from kexue.errors import CheckpointError
from kexue.models import Transformer

V, H, HEADS, I, LAYERS = 50, 16, 2, 24, 2
D = H // HEADS


def _junnyu_checkpoint(folder, mlm: bool = True) -> dict:
    g = torch.Generator().manual_seed(5)
    state = {
        "roformer.embeddings.word_embeddings.weight": torch.randn(V, H, generator=g),
        "roformer.embeddings.token_type_embeddings.weight": torch.randn(2, H, generator=g),
    }
    for i in range(LAYERS):
        p = f"roformer.encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            state[p + name + ".weight"] = torch.randn(H, H, generator=g) / math.sqrt(H)
        state[p + "intermediate.dense.weight"] = torch.randn(I, H, generator=g) / math.sqrt(H)
        state[p + "output.dense.weight"] = torch.randn(H, I, generator=g) / math.sqrt(I)
    if mlm:
        state["cls.predictions.decoder.weight"] = state["roformer.embeddings.word_embeddings.weight"].clone()
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "model.safetensors"))
    config = {"model_type": "roformer", "architectures": ["RoFormerForMaskedLM"], "vocab_size": V,
              "hidden_size": H, "embedding_size": H, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
              "intermediate_size": I, "hidden_act": "relu", "max_position_embeddings": 64, "type_vocab_size": 2,
              "layer_norm_eps": 1e-12, "norm_type": "rms_norm", "use_bias": False, "rotary_value": False,
              "pad_token_id": 0, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
    (folder / "config.json").write_text(json.dumps(config))
    return state


def _norm(x):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-12)


def _rope(x):  # x [B, h, L, d]; explicit 2x2 rotations of adjacent pairs, theta_i = 10000^(-2i/d)
    out = torch.empty_like(x)
    length = x.shape[2]
    for m in range(length):
        for i in range(D // 2):
            t = m * 10000 ** (-2 * i / D)
            c, s = math.cos(t), math.sin(t)
            a, b = x[:, :, m, 2 * i], x[:, :, m, 2 * i + 1]
            out[:, :, m, 2 * i] = a * c - b * s
            out[:, :, m, 2 * i + 1] = b * c + a * s
    return out


def _reference(state, ids, types, mask):
    x = state["roformer.embeddings.word_embeddings.weight"][ids] + state[
        "roformer.embeddings.token_type_embeddings.weight"][types]
    x = _norm(x)
    b, length, _ = x.shape
    neg = torch.finfo(torch.float32).min
    for i in range(LAYERS):
        p = f"roformer.encoder.layer.{i}."

        def heads(w):
            return (x @ w.T).view(b, length, HEADS, D).transpose(1, 2)

        q = _rope(heads(state[p + "attention.self.query.weight"]))
        k = _rope(heads(state[p + "attention.self.key.weight"]))
        v = heads(state[p + "attention.self.value.weight"])
        scores = q @ k.transpose(-1, -2) / math.sqrt(D) + (1 - mask[:, None, None, :].float()) * neg
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, length, H)
        x = _norm(x + ctx @ state[p + "attention.output.dense.weight"].T)
        f = torch.relu(x @ state[p + "intermediate.dense.weight"].T) @ state[p + "output.dense.weight"].T
        x = _norm(x + f)
    return x, x @ state["roformer.embeddings.word_embeddings.weight"].T


def test_roformer_v2_matches_spec_formulas(tmp_path):
    state = _junnyu_checkpoint(tmp_path)
    model = Transformer.from_pretrained(tmp_path)
    assert model.config.family == "roformer_v2" and model.mlm_head is not None and model.pooler is None
    ids = torch.tensor([[2, 7, 9, 11, 3, 0], [2, 5, 3, 0, 0, 0]])
    mask = (ids != 0).long()
    types = torch.tensor([[0, 0, 0, 1, 1, 0], [0, 0, 1, 0, 0, 0]])
    with torch.no_grad():
        out = model(ids, mask, types)
    hidden, logits = _reference(state, ids, types, mask)
    real = mask.bool()
    assert (out.last_hidden_state - hidden)[real].abs().max() < 1e-5
    assert (out.mlm_logits - logits)[real].abs().max() < 1e-4


def test_roformer_v2_parameter_audit(tmp_path):
    _junnyu_checkpoint(tmp_path)
    model = Transformer.from_pretrained(tmp_path)
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.endswith("bias") for n in names)
    assert not any("norm" in n for n in names)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == V * H + 2 * H + LAYERS * (4 * H * H + 2 * H * I)


def test_roformer_v2_round_trip_and_v1_as_v2_raises(tmp_path):
    _junnyu_checkpoint(tmp_path / "v2")
    model = Transformer.from_pretrained(tmp_path / "v2")
    model.save_pretrained(tmp_path / "again")
    config = json.loads((tmp_path / "again" / "config.json").read_text())
    assert config["model_type"] == "roformer" and config["norm_type"] == "rms_norm" and config["use_bias"] is False
    again = Transformer.from_pretrained(tmp_path / "again")
    ids = torch.tensor([[2, 7, 9, 3]])
    with torch.no_grad():
        assert torch.equal(model(ids).mlm_logits, again(ids).mlm_logits)

    from transformers import RoFormerConfig, RoFormerModel

    RoFormerModel(RoFormerConfig(vocab_size=V, hidden_size=H, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                 intermediate_size=I)).save_pretrained(tmp_path / "v1")
    config = json.loads((tmp_path / "v1" / "config.json").read_text())
    config.update(norm_type="rms_norm", use_bias=False)
    (tmp_path / "v1" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="RoFormer \\(v1\\)"):
        Transformer.from_pretrained(tmp_path / "v1")


def test_scale_free_norm_properties():
    from kexue.nn.norms import ScaleFreeRMSNorm

    g = torch.Generator().manual_seed(9)
    x = torch.randn(4, 16, generator=g, dtype=torch.float64) * 3 + 1
    y = ScaleFreeRMSNorm()(x)
    assert torch.allclose(y.pow(2).mean(-1).sqrt(), torch.ones(4, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(ScaleFreeRMSNorm()(7.5 * x), y, atol=1e-10)
    assert y.mean(-1).abs().min() > 1e-3  # not mean-centred
