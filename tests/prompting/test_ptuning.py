"""P-tuning (spec §7): the frozen model stays bit-for-bit frozen under Adam and AdamW with weight decay, step-0
outputs equal the unmodified model's, the reference layout holds for any text, the LSTM encoder trains."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kexue.data.tokenization import Tokenizer
from kexue.models import Transformer, TransformerConfig
from kexue.prompting import ClozePattern, PETClassifier, Verbalizer
from kexue.prompting.ptuning import REFERENCE_TEMPLATE, PTuningModel, merged_copy, prompt_token_ids
from _prompt_stubs import char_tokenizer, sentiment_texts


@pytest.fixture(scope="module")
def data(kexue_data):
    texts, labels = sentiment_texts(kexue_data, n=16)
    return texts, labels, char_tokenizer(texts)


def tiny_model(vocab_size: int, pad: int) -> Transformer:
    torch.manual_seed(0)
    return Transformer(TransformerConfig(family="bert", vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, intermediate_size=48, max_position_embeddings=80,
                                         mlm=True, pad_token_id=pad))


def setup(data, encoder="none", train_backbone=False):
    texts, labels, tok = data
    tok = Tokenizer(copy.deepcopy(tok.backend))
    model = tiny_model(tok.vocab_size, tok.pad_token_id)
    ids = prompt_token_ids(tok, 8, model)
    reference = copy.deepcopy(model)
    wrapped = PTuningModel(model, ids, encoder, train_backbone)
    clf = PETClassifier(wrapped, tok, ClozePattern(REFERENCE_TEMPLATE), Verbalizer({0: ["不"], 1: ["很"]}),
                        max_length=64, prompt_ids=ids)
    batch = clf.collate([clf.training_features(t, y) for t, y in zip(texts, labels)])
    return tok, ids, reference, wrapped, clf, batch


def train(wrapped, clf, batch, optimizer, steps=3):
    wrapped.train()
    for _ in range(steps):
        loss = clf.loss(wrapped, batch, probability=0.15)      # with Su's auxiliary MLM loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("make_optimizer", [
    lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=0.1),
    lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
], ids=["adam-l2", "adamw"])
def test_only_the_prompt_rows_change(data, make_optimizer):
    tok, ids, reference, wrapped, clf, batch = setup(data)
    trainable = [p for p in wrapped.parameters() if p.requires_grad]
    train(wrapped, clf, batch, make_optimizer(trainable))
    after = merged_copy(wrapped.backbone).state_dict()
    before = reference.state_dict()
    assert after.keys() == before.keys()
    key = "embeddings.word_embeddings.weight"
    others = torch.ones(before[key].shape[0], dtype=torch.bool)
    others[ids] = False
    for name, value in before.items():
        if name == key:
            assert torch.equal(after[name][others], value[others])
            assert (after[name][ids] != value[ids]).any(dim=1).all()      # every prompt row moved
        else:
            assert torch.equal(after[name], value), name
    assert torch.equal(wrapped.backbone.embeddings.word_embeddings.parametrizations.weight.original,
                       reference.embeddings.word_embeddings.weight)


@pytest.mark.parametrize("encoder", ["none", "lstm", "mlp"])
def test_outputs_at_step_0_equal_the_unmodified_model(data, encoder):
    tok, ids, reference, wrapped, clf, batch = setup(data, encoder)
    wrapped.eval()
    reference.eval()
    got = wrapped(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    want = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert torch.equal(got.mlm_logits, want.mlm_logits)
    assert torch.equal(got.last_hidden_state, want.last_hidden_state)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet="很不满意好差体育，。abc 1{}[]", min_size=1, max_size=200).filter(str.strip))
def test_reference_layout_for_any_text(data, text):
    texts, _, tok = data
    ids = list(range(10, 18))
    pattern = ClozePattern(REFERENCE_TEMPLATE)
    for text in (text, texts[0] * 10):
        enc = pattern.encode(tok, text, [1], max_length=64, prompt_ids=ids)
        assert enc.input_ids[5] == tok.mask_token_id and enc.mask_positions == [[5]]
        assert enc.prompt_positions == [1, 2, 3, 4, 6, 7, 8, 9]
        assert [enc.input_ids[i] for i in (1, 2, 3, 4, 6, 7, 8, 9)] == ids
        assert len(enc.input_ids) <= 64


def test_lstm_encoder_gets_gradients_and_the_backbone_stays_frozen(data):
    tok, ids, reference, wrapped, clf, batch = setup(data, "lstm")
    encoder = wrapped.prompt_rows.encoder
    start = {n: p.detach().clone() for n, p in encoder.named_parameters()}
    trainable = {id(p) for p in wrapped.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in wrapped.prompt_rows.parameters()}
    train(wrapped, clf, batch, torch.optim.AdamW([p for p in wrapped.parameters() if p.requires_grad], lr=1e-2))
    for n, p in encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, n
        assert not torch.equal(p, start[n]), n
    merged = merged_copy(wrapped.backbone).state_dict()
    for name, value in reference.state_dict().items():
        if name != "embeddings.word_embeddings.weight":
            assert torch.equal(merged[name], value), name


def test_full_fine_tuning_option_moves_the_backbone(data):
    tok, ids, reference, wrapped, clf, batch = setup(data, train_backbone=True)
    train(wrapped, clf, batch, torch.optim.AdamW([p for p in wrapped.parameters() if p.requires_grad], lr=1e-2))
    assert not torch.equal(wrapped.backbone.layers[0].intermediate.weight, reference.layers[0].intermediate.weight)


def test_unused_tokens_are_looked_up_by_string():
    tok = Tokenizer.from_pretrained("minilm")
    from kexue.hub import resolve_model_path

    lines = (resolve_model_path("minilm") / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert prompt_token_ids(tok, 8) == [lines.index(f"[unused{i}]") for i in range(1, 9)] == list(range(2, 10))


def test_a_vocabulary_without_unused_tokens_gets_new_rows(data):
    texts, _, tok = data
    tok = Tokenizer(copy.deepcopy(tok.backend))
    model = tiny_model(tok.vocab_size, tok.pad_token_id).eval()
    old_vocab = tok.vocab_size
    batch = tok(texts[:3])
    x = torch.tensor([batch["input_ids"][0]])
    before = model(input_ids=x).mlm_logits
    ids = prompt_token_ids(tok, 8, model)
    assert ids == list(range(old_vocab, old_vocab + 8)) and tok.vocab_size == old_vocab + 8
    assert tok.convert_ids_to_tokens(ids) == [f"[P{i}]" for i in range(1, 9)]
    after = model(input_ids=x).mlm_logits
    assert after.shape[-1] == old_vocab + 8 and torch.equal(after[..., :old_vocab], before)
    assert prompt_token_ids(tok, 8, model) == ids                          # idempotent


def test_saved_model_reloads_with_the_trained_rows(data, tmp_path):
    tok, ids, reference, wrapped, clf, batch = setup(data, "mlp")
    train(wrapped, clf, batch, torch.optim.Adam([p for p in wrapped.parameters() if p.requires_grad], lr=1e-2))
    wrapped.eval()
    wrapped.save_pretrained(tmp_path / "m")
    loaded = Transformer.from_pretrained(tmp_path / "m")
    got = loaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).mlm_logits
    want = wrapped(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).mlm_logits
    assert torch.allclose(got, want, atol=1e-6)
