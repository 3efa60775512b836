"""`kexue train simcse` end to end on a tiny model and a slice of real sentences; the recipe's batching rules."""

from __future__ import annotations

import json

import pytest
import torch

from kexue.cli import main
from kexue.embeddings import SentenceEncoder
from kexue.errors import ConfigError
from kexue.losses.simcse import simcse_loss
from kexue.tasks.simcse import (SimCSEConfig, SimCSEModel, batches_without_singletons, distinct_features, make_collate,
                                make_loss, set_dropout)


def _sentences_file(tmp_path, kexue_data, n=40):
    lines = (kexue_data / "wiki1m_en_prefix" / "wiki1m_for_simcse.txt").read_text(encoding="utf-8").splitlines()[:n]
    path = tmp_path / "sentences.txt"
    path.write_text("\n".join(lines + lines[:5]) + "\n", encoding="utf-8")  # 5 repeats
    return path, lines


def test_cli_train_simcse(tmp_path, tiny_bert_dir, kexue_data):
    path, lines = _sentences_file(tmp_path, kexue_data)
    out = tmp_path / "run"
    main(["train", "simcse", "--model", str(tiny_bert_dir), "--data", str(path), "--eval-data", "stsb_en",
          "--eval-limit", "32", "--batch-size", "8", "--epochs", "1", "--lr", "1e-3", "--dropout", "0.3",
          "--negatives", "with-same-view", "--output", str(out), "--no-progress"])
    results = json.loads((out / "results.json").read_text())
    assert results["sentences"] == len(set(lines))
    assert results["repeats_dropped"] == 5 + len(lines) - len(set(lines))
    assert set(results["after"]) == {"dev", "test"} and results["optimizer_steps"] == -(-len(set(lines)) // 8)
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(e["event"] == "eval" and "spearman" in e for e in events)
    config = json.loads((out / "config.json").read_text())
    assert config["simcse"]["dropout"] == 0.3 and config["simcse"]["negatives"] == "with-same-view"
    trained = SentenceEncoder.from_pretrained(out / "best")
    start = SentenceEncoder.from_pretrained(tiny_bert_dir, pooling="cls")
    assert trained.pooling == "cls"
    assert not torch.equal(trained.backbone.embeddings.word_embeddings.weight,
                           start.backbone.embeddings.word_embeddings.weight)


def test_options_are_checked():
    for kwargs, flag in (({"negatives": "both"}, "--negatives"), ({"dropout": 0.0}, "--dropout"),
                         ({"dropout": 1.5}, "--dropout"), ({"train_limit": 1}, "--train-limit")):
        with pytest.raises(ConfigError, match=flag):
            SimCSEConfig(**kwargs)


def test_no_sentence_twice_in_a_batch(tiny_bert_dir):
    encoder = SentenceEncoder.from_pretrained(tiny_bert_dir, max_length=6)
    long_a = "one two three four five six seven"
    long_b = "one two three four five six eight"  # equal to long_a after truncation to 6 tokens
    feats, dropped = distinct_features(encoder, ["a cat", "a dog", "a cat", long_a, long_b])
    assert dropped == 2 and len(feats) == 3
    batches = batches_without_singletons(9, 4, torch.Generator().manual_seed(0), drop_last=False)
    assert sorted(i for b in batches for i in b) == list(range(9))
    assert all(len(b) >= 2 and len(set(b)) == len(b) for b in batches)  # 9 = 4 + 5: the singleton merged


def test_loss_uses_two_views_of_the_same_batch(tiny_bert_dir):
    encoder = SentenceEncoder.from_pretrained(tiny_bert_dir)
    feats, _ = distinct_features(encoder, ["a cat sits", "dogs run", "the sun is hot"])
    batch = make_collate(encoder.tokenizer.pad_token_id)(feats)
    assert torch.equal(batch["input_ids"][:3], batch["input_ids"][3:])
    model = SimCSEModel(encoder).train()
    torch.manual_seed(3)
    loss = make_loss(SimCSEConfig(negatives="cross-view"), check_views=True)(model, batch)
    torch.manual_seed(3)
    emb = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    assert torch.allclose(loss, simcse_loss(emb[:3], emb[3:], 20.0, "cross-view"))
    set_dropout(encoder, 0.0)  # no dropout: the two views coincide, which the recipe refuses
    with pytest.raises(ConfigError, match="--dropout"):
        make_loss(SimCSEConfig(), check_views=True)(model, batch)
