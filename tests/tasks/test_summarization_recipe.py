"""SPACES generator pieces: the collator's copy labels (spec §12 property 2 in place), noise, the loss
``seq2seq + 2 × copy`` against a transcription, and the copy head's save / load."""

import random

import pytest
import torch
import torch.nn.functional as F

from kexue.errors import ConfigError
from kexue.models import Transformer, TransformerConfig
from kexue.tasks.seq2seq import Seq2SeqConfig, seq2seq_loss
from kexue.tasks.summarization import CopySeq2SeqLM, SpacesCollator, SummarizeConfig, noised, spaces_loss, summarize_texts
from kexue.tasks.summarization_data import copy_tags


class _Tok:
    cls_token_id, sep_token_id, pad_token_id = 1, 2, 0


def _model(copy=True):
    torch.manual_seed(0)
    cfg = TransformerConfig(family="bert", vocab_size=40, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                            intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0, mlm=True)
    return CopySeq2SeqLM(Transformer(cfg).eval(), _Tok(), {"copy": copy})


A, B, C, D, X = 10, 11, 12, 13, 14


def test_collator_copy_labels_hand_layout():
    collate = SpacesCollator(_Tok(), 16, 16, noise=0.0, train=False)
    batch = collate([{"sources": [[A, B, C, D]], "target": [B, C, X, D]},
                     {"sources": [[A]], "target": [A]}])
    assert batch["input_ids"][0].tolist() == [1, A, B, C, D, 2, B, C, X, D, 2]
    assert torch.equal(batch["input_ids"], batch["clean_ids"])
    # label t is the tag of token t + 1: [SEP] -> b (1), b -> c (2), c -> x (0), x -> d (1), d -> [SEP] (0)
    assert batch["copy_labels"][0].tolist() == [-100] * 5 + [1, 2, 0, 1, 0]
    assert batch["copy_labels"][1].tolist() == [-100, -100, 1, 0] + [-100] * 6


def test_noise_draws_from_the_sequence_and_keeps_labels_clean():
    rng = random.Random(0)
    ids = list(range(20, 40))
    out = noised(ids, 0.5, rng)
    assert len(out) == len(ids) and set(out) <= set(ids) and out != ids
    collate = SpacesCollator(_Tok(), 32, 32, noise=0.5, train=True, seed=3)
    source, target = [A, B, C, D, X, A, B], [B, C, D]
    batch = collate([{"sources": [source], "target": target}])
    noisy_source = batch["input_ids"][0, 1:1 + len(source)].tolist()
    assert set(noisy_source) <= set(source)
    assert batch["clean_ids"][0].tolist() == [1, *source, 2, *target, 2]
    expected = copy_tags(noisy_source, target)[1]
    assert batch["copy_labels"][0, len(source) + 1:len(source) + 1 + len(target)].tolist() == expected


def test_source_choice_trains_on_both_sources():
    collate = SpacesCollator(_Tok(), 8, 8, noise=0.0, train=True, seed=0)
    seen = {tuple(collate([{"sources": [[A], [B, C]], "target": [D]}])["input_ids"][0, 1:-3].tolist())
            for _ in range(30)}
    assert seen == {(A,), (B, C)}  # source_1 and source_2 both drawn
    dev = SpacesCollator(_Tok(), 8, 8, train=False)
    assert dev([{"sources": [[A], [B, C]], "target": [D]}])["input_ids"][0].tolist() == [1, A, 2, D, 2]


def test_loss_is_lm_plus_two_copy_against_transcription():
    model = _model()
    collate = SpacesCollator(_Tok(), 16, 16, noise=0.0, train=False)
    batch = collate([{"sources": [[A, B, C, D]], "target": [B, C, X, D]},
                     {"sources": [[A, C]], "target": [C, A, A]}])
    cfg = SummarizeConfig(seq2seq=Seq2SeqConfig(loss="ce"), copy=True, copy_weight=2.0)
    out = spaces_loss(model, batch, cfg)
    words, tags = model.forward_with_tags(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    lm_terms, copy_terms = [], []
    for b in range(2):
        for t in range(batch["input_ids"].shape[1] - 1):
            if batch["token_type_ids"][b, t + 1] == 1 and batch["attention_mask"][b, t + 1] == 1:
                lm_terms.append(-torch.log_softmax(words[b, t], -1)[batch["input_ids"][b, t + 1]])
                copy_terms.append(-torch.log_softmax(tags[b, t], -1)[batch["copy_labels"][b, t]])
    lm, copy = torch.stack(lm_terms).mean(), torch.stack(copy_terms).mean()
    assert len(copy_terms) == 5 + 4
    torch.testing.assert_close(out["loss"], lm + 2 * copy)
    torch.testing.assert_close(out["copy_loss"], copy)
    plain = spaces_loss(model, batch, SummarizeConfig(seq2seq=Seq2SeqConfig(loss="ce"), copy=False))
    torch.testing.assert_close(plain["loss"], lm)
    sparse = spaces_loss(model, batch, SummarizeConfig(seq2seq=Seq2SeqConfig(loss="sparse-softmax", sparse_k=40),
                                                       copy=False))
    torch.testing.assert_close(sparse["loss"], seq2seq_loss(words, batch, "ce"))  # k = V: the full CE


def test_copy_head_round_trip_and_no_copy_refusal(tmp_path, monkeypatch):
    model = _model()
    with torch.no_grad():
        model.copy_head.bias.copy_(torch.tensor([0.1, 0.2, 0.3]))
    monkeypatch.setattr(type(model.tokenizer), "save_pretrained", lambda self, path: None, raising=False)
    import kexue.tasks.seq2seq as s2s
    monkeypatch.setattr(s2s, "load_seq2seq_backbone", lambda m, *a, **k: (Transformer.from_pretrained(m), _Tok()))
    model.save_pretrained(tmp_path / "with")
    loaded = CopySeq2SeqLM.from_pretrained(tmp_path / "with", log=lambda _m: None)
    assert loaded.has_trained_copy_head
    torch.testing.assert_close(loaded.copy_head.bias, model.copy_head.bias)
    bare = _model(copy=False)
    bare.save_pretrained(tmp_path / "without")
    assert not (tmp_path / "without" / "copy_head.pt").exists()
    loaded = CopySeq2SeqLM.from_pretrained(tmp_path / "without", log=lambda _m: None)
    with pytest.raises(ConfigError, match="--no-copy"):
        summarize_texts(loaded, ["x"], max_source_length=4, max_target_length=4, copy=True)


def test_config_refusals_name_flags():
    with pytest.raises(ConfigError, match="--noise"):
        SummarizeConfig(noise=1.0)
    with pytest.raises(ConfigError, match="--copy-weight"):
        SummarizeConfig(copy_weight=-1)
