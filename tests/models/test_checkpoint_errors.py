"""Every kind of bad checkpoint gives its typed, readable error; allowances and file formats work."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertForMaskedLM, BertModel, RoFormerConfig, RoFormerModel

from kexue.errors import CheckpointError, ConfigError
from kexue.models import Transformer, TransformerConfig, load_encoder, resolve_model_path
from kexue.models.auto import HFEncoder

from _tiny import TINY, padded_batch


@pytest.fixture()
def bert_dir(tmp_path):
    torch.manual_seed(0)
    BertModel(BertConfig(**TINY)).save_pretrained(tmp_path / "bert")
    return tmp_path / "bert"


def _edit_weights(folder, fn):
    path = folder / "model.safetensors"
    state = dict(load_file(str(path)))
    fn(state)
    save_file(state, str(path))


def test_missing_key(bert_dir):
    _edit_weights(bert_dir, lambda s: s.pop("encoder.layer.1.attention.self.key.weight"))
    with pytest.raises(CheckpointError) as err:
        Transformer.from_pretrained(bert_dir)
    assert err.value.missing == ["encoder.layer.1.attention.self.key.weight"]
    assert "encoder.layer.1.attention.self.key.weight" in str(err.value)


def test_extra_key_and_allowance(bert_dir):
    _edit_weights(bert_dir, lambda s: s.__setitem__("encoder.layer.0.adapter.weight", torch.zeros(3)))
    with pytest.raises(CheckpointError) as err:
        Transformer.from_pretrained(bert_dir)
    assert err.value.unexpected == ["encoder.layer.0.adapter.weight"]
    Transformer.from_pretrained(bert_dir, allow_unexpected=("encoder.layer.*.adapter.*",))


def test_wrong_shape(bert_dir):
    _edit_weights(bert_dir, lambda s: s.__setitem__("encoder.layer.0.intermediate.dense.weight", torch.zeros(36, 32)))
    with pytest.raises(CheckpointError) as err:
        Transformer.from_pretrained(bert_dir)
    assert err.value.mismatched == {"encoder.layer.0.intermediate.dense.weight": ((37, 32), (36, 32))}
    assert "model expects (37, 32), checkpoint has (36, 32)" in str(err.value)


def test_new_head_needs_explicit_allowance(bert_dir):
    with pytest.raises(CheckpointError) as err:
        Transformer.from_pretrained(bert_dir, heads=("pooler", "mlm"))
    assert "cls.predictions.bias" in err.value.missing and "allow_missing" in str(err.value)
    model = Transformer.from_pretrained(bert_dir, heads=("pooler", "mlm"), allow_missing=("cls.*",))
    assert model.mlm_head is not None


def test_unknown_model_type(bert_dir):
    config = json.loads((bert_dir / "config.json").read_text())
    config["model_type"] = "gpt2"
    (bert_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError) as err:
        Transformer.from_pretrained(bert_dir)
    text = str(err.value)
    assert "'gpt2'" in text and "'bert'" in text and "'roformer'" in text and "transformers.AutoModel" in text


def test_roformer_v2_state_dict_offered_as_roformer(tmp_path):
    RoFormerModel(RoFormerConfig(**TINY)).save_pretrained(tmp_path)
    _edit_weights(tmp_path, lambda s: [s.pop(k) for k in list(s) if k.endswith(".bias") or "LayerNorm" in k])
    with pytest.raises(CheckpointError) as err:
        Transformer.from_pretrained(tmp_path)
    assert "RoFormerV2" in str(err.value)
    assert "encoder.layer.0.attention.self.query.bias" in err.value.missing


def test_truncated_safetensors(bert_dir):
    path = bert_dir / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError) as err:
        Transformer.from_pretrained(bert_dir)
    assert str(path) in str(err.value)


def test_no_weights_and_no_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(BertConfig(**TINY).to_dict()))
    with pytest.raises(CheckpointError, match="no weights found"):
        Transformer.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="config.json not found"):
        Transformer.from_pretrained(tmp_path / "..")


def test_unknown_alias():
    with pytest.raises(ConfigError, match="minilm"):
        resolve_model_path("no-such-model-xyz")


def test_sharded_and_bin_checkpoints_load(tmp_path):
    torch.manual_seed(0)
    hf = BertForMaskedLM(BertConfig(**TINY)).eval()
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    ids, mask, types = padded_batch()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    kx = Transformer.from_pretrained(tmp_path / "sharded")
    with torch.no_grad():
        assert (kx(ids, mask, types).mlm_logits - ref).abs().max() < 1e-5
    # pytorch_model.bin written by kexue
    kx.save_pretrained(tmp_path / "kxbin", safe_serialization=False)
    again = Transformer.from_pretrained(tmp_path / "kxbin")
    with torch.no_grad():
        assert (again(ids, mask, types).mlm_logits - ref).abs().max() < 1e-5


def test_load_encoder_kexue_and_fallback(bert_dir, tmp_path):
    model, kind = load_encoder(bert_dir)
    assert kind == "kexue" and isinstance(model, Transformer)
    from transformers import DistilBertConfig, DistilBertModel

    DistilBertModel(DistilBertConfig(vocab_size=99, dim=32, n_layers=1, n_heads=4, hidden_dim=37,
                                     max_position_embeddings=64)).save_pretrained(tmp_path / "distil")
    model, kind = load_encoder(tmp_path / "distil")
    assert kind == "transformers" and isinstance(model, HFEncoder)
    ids, mask, _ = padded_batch()
    out = model(ids, mask, output_hidden_states=True)
    assert out.last_hidden_state.shape == (3, 11, 32) and len(out.hidden_states) == 2


def test_config_errors_name_the_field():
    for field, value in [("family", "gpt"), ("hidden_size", 30), ("attention_scale", "cosine"),
                         ("attention_mask_kind", "prefix"), ("hidden_act", "mish"), ("hidden_dropout_prob", 1.5)]:
        kwargs = {"vocab_size": 99, "hidden_size": 32, "num_attention_heads": 4}
        kwargs[field] = value
        with pytest.raises(ConfigError, match=field if field != "hidden_size" else "num_attention_heads"):
            TransformerConfig(**kwargs)


def test_hf_config_round_trip():
    for family in ("bert", "roformer", "roformer_v2"):
        cfg = TransformerConfig(family=family, vocab_size=99, hidden_size=32, num_attention_heads=4,
                                residual_attention=True, attention_scale="entropy_invariant", mlm=True)
        assert TransformerConfig.from_hf_config(cfg.to_hf_config()) == cfg


# ---------------------------------------------------------------------- the transformers.AutoModel path
def _distilbert(folder):
    from transformers import DistilBertConfig, DistilBertModel

    torch.manual_seed(0)
    DistilBertModel(DistilBertConfig(vocab_size=99, dim=32, n_layers=1, n_heads=4, hidden_dim=37,
                                     max_position_embeddings=64)).save_pretrained(folder)
    return folder


def test_automodel_missing_weight_is_a_checkpoint_error(tmp_path):
    folder = _distilbert(tmp_path / "distil")
    _edit_weights(folder, lambda s: s.pop("transformer.layer.0.ffn.lin1.weight"))
    with pytest.raises(CheckpointError) as err:
        load_encoder(folder)
    assert err.value.missing == ["transformer.layer.0.ffn.lin1.weight"]
    assert "transformers.AutoModel" in str(err.value) and "allow_missing" in str(err.value)
    model, kind = load_encoder(folder, allow_missing=("transformer.layer.0.ffn.lin1.*",))
    assert kind == "transformers"


def test_automodel_unexpected_weight_is_a_checkpoint_error(tmp_path):
    folder = _distilbert(tmp_path / "distil")
    _edit_weights(folder, lambda s: s.__setitem__("transformer.layer.0.adapter.weight", torch.zeros(3)))
    with pytest.raises(CheckpointError) as err:
        load_encoder(folder)
    assert err.value.unexpected == ["transformer.layer.0.adapter.weight"]
    load_encoder(folder, allow_unexpected=("transformer.layer.*.adapter.*",))


def test_automodel_exact_load_equals_transformers(tmp_path):
    from transformers import AutoModel

    folder = _distilbert(tmp_path / "distil")
    model, kind = load_encoder(folder)
    reference = AutoModel.from_pretrained(str(folder)).eval()
    ids, mask, _ = padded_batch()
    with torch.no_grad():
        ours = model(ids, mask).last_hidden_state
        theirs = reference(input_ids=ids, attention_mask=mask).last_hidden_state
    assert kind == "transformers" and torch.equal(ours, theirs)


def test_unsupported_bert_option_does_not_fall_back(bert_dir):
    config = json.loads((bert_dir / "config.json").read_text())
    config["position_embedding_type"] = "relative_key"
    (bert_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError) as err:
        load_encoder(bert_dir)
    assert "relative_key" in str(err.value) and str(bert_dir / "config.json") in str(err.value)


def test_unknown_model_type_through_load_encoder_is_a_config_error(bert_dir):
    config = json.loads((bert_dir / "config.json").read_text())
    config["model_type"] = "no-such-model"
    (bert_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError) as err:
        load_encoder(bert_dir)
    assert "'no-such-model'" in str(err.value) and "transformers.AutoModel" in str(err.value)


def test_position_limit_by_family():
    from kexue.models.auto import position_limit

    assert position_limit({"model_type": "bert", "max_position_embeddings": 512, "vocab_size": 99,
                           "hidden_size": 32, "num_attention_heads": 4}) == 512
    assert position_limit({"model_type": "roformer", "max_position_embeddings": 512, "vocab_size": 99,
                           "hidden_size": 32, "num_attention_heads": 4}) is None  # rotary: no table
    assert position_limit({"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}) == 512
    assert position_limit({"model_type": "distilbert", "max_position_embeddings": 64}) == 64
