"""Parity with transformers' own classes (fp32, padded batches, 1e-5) and the save -> transformers round trip."""

from __future__ import annotations

import pytest
import torch
from transformers import (BertConfig, BertForMaskedLM, BertForPreTraining, BertModel, RoFormerConfig,
                          RoFormerForMaskedLM, RoFormerModel)

from kexue.models import Transformer

from _tiny import TINY, max_diff, padded_batch

TOL = 1e-5

CASES = {
    "BertModel": (BertModel, BertConfig, {}),
    "BertForPreTraining": (BertForPreTraining, BertConfig, {}),
    "BertForMaskedLM": (BertForMaskedLM, BertConfig, {}),
    "RoFormerModel": (RoFormerModel, RoFormerConfig, {}),
    "RoFormerModel-embedding_size": (RoFormerModel, RoFormerConfig, {"embedding_size": 24}),
    "RoFormerForMaskedLM": (RoFormerForMaskedLM, RoFormerConfig, {}),
    "RoFormerForMaskedLM-embedding_size": (RoFormerForMaskedLM, RoFormerConfig, {"embedding_size": 24}),
}


def _hf_outputs(model, ids, mask, types):
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
    base = getattr(model, "bert", None) or getattr(model, "roformer", None) or model
    with torch.no_grad():
        base_out = base(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
    return {
        "hidden_states": base_out.hidden_states,
        "last": base_out.last_hidden_state,
        "pooler": getattr(base_out, "pooler_output", None),
        "mlm": getattr(out, "prediction_logits", None) if hasattr(out, "prediction_logits") else getattr(out, "logits", None),
        "nsp": getattr(out, "seq_relationship_logits", None),
    }


def _compare(kx: Transformer, ref: dict, ids, mask, types) -> None:
    with torch.no_grad():
        out = kx(ids, mask, types, output_hidden_states=True)
    assert max_diff(out.last_hidden_state, ref["last"]) < TOL
    assert len(out.hidden_states) == len(ref["hidden_states"]) == kx.config.num_hidden_layers + 1
    for a, b in zip(out.hidden_states, ref["hidden_states"]):
        assert max_diff(a, b) < TOL
    if ref["pooler"] is not None:
        assert max_diff(out.pooler_output, ref["pooler"]) < TOL
    if ref["mlm"] is not None:
        assert out.mlm_logits.shape == ref["mlm"].shape
        assert max_diff(out.mlm_logits, ref["mlm"]) < TOL
    if ref["nsp"] is not None:
        assert max_diff(out.nsp_logits, ref["nsp"]) < TOL


@pytest.mark.parametrize("case", sorted(CASES))
def test_parity_with_transformers(case, tmp_path):
    cls, config_cls, extra = CASES[case]
    torch.manual_seed(3)
    hf = cls(config_cls(**TINY, **extra)).eval()
    with torch.no_grad():  # non-trivial LayerNorm / bias values so that a mis-mapped key shows
        for name, p in hf.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    hf.save_pretrained(tmp_path / "hf")
    ids, mask, types = padded_batch()
    ref = _hf_outputs(hf, ids, mask, types)
    kx = Transformer.from_pretrained(tmp_path / "hf")
    assert kx.config.family == ("bert" if config_cls is BertConfig else "roformer")
    assert (kx.mlm_head is not None) == (ref["mlm"] is not None)
    assert (kx.nsp_head is not None) == (ref["nsp"] is not None)
    _compare(kx, ref, ids, mask, types)

    # round trip: kexue save_pretrained -> transformers from_pretrained -> identical outputs
    kx.save_pretrained(tmp_path / "kx")
    back = cls.from_pretrained(tmp_path / "kx").eval()
    ref2 = _hf_outputs(back, ids, mask, types)
    for key in ("last", "pooler", "mlm", "nsp"):
        if ref[key] is not None:
            assert max_diff(ref2[key], ref[key]) == 0.0, key


def test_round_trip_kexue_to_kexue_exact(tmp_path):
    hf = BertForPreTraining(BertConfig(**TINY)).eval()
    hf.save_pretrained(tmp_path / "hf")
    kx = Transformer.from_pretrained(tmp_path / "hf")
    kx.save_pretrained(tmp_path / "kx", safe_serialization=False)
    again = Transformer.from_pretrained(tmp_path / "kx")
    for (n1, p1), (n2, p2) in zip(kx.state_dict().items(), again.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)


def test_mlm_head_is_tied_to_word_embeddings(tmp_path):
    BertForMaskedLM(BertConfig(**TINY)).save_pretrained(tmp_path)
    kx = Transformer.from_pretrained(tmp_path)
    ids, mask, _ = padded_batch()
    with torch.no_grad():
        kx.get_input_embeddings().weight[7].mul_(3.0)
        out = kx(ids, mask)
        h = kx.mlm_head.norm(kx.mlm_head.act(kx.mlm_head.dense(out.last_hidden_state)))
    expected = h @ kx.get_input_embeddings().weight[7] + kx.mlm_head.bias[7]
    assert torch.allclose(out.mlm_logits[..., 7], expected, atol=1e-5)
