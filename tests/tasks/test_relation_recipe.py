"""The relation (GPLinker) recipe end to end through the CLI on a tiny from-scratch Chinese model; offsets
round-trip; oracle decoding through the recipe's own label and decode path."""

from __future__ import annotations

import json

import pytest

import kexue.cli.extraction  # noqa: F401  (registers the extraction commands)
from kexue.cli import main
from kexue.data.tokenization import Tokenizer
from kexue.errors import CheckpointError, ConfigError
from kexue.extraction.gplinker_relation import sparse_labels_to_logits
from kexue.tasks.extraction_common import collate, encode_split, keep_top_cells
from kexue.tasks.extraction_data import load_extraction_splits
from kexue.tasks.relation import RelationTask, load_relation_model

TINY = ["--model", "scratch", "--scratch-hidden", "32", "--scratch-layers", "1", "--scratch-heads", "2",
        "--head-size", "16", "--max-length", "64"]


def test_train_and_predict_relations(tmp_path, kexue_data):
    out = tmp_path / "run"
    main(["train", "relation", *TINY, "--data", "cmeie_subset", "--train-limit", "48", "--eval-limit", "16",
          "--batch-size", "16", "--epochs", "1", "--lr", "1e-3", "--output", str(out), "--no-progress"])
    results = json.loads((out / "results.json").read_text())
    assert set(results["dev"]) == {"precision", "recall", "f1"} and results["test"] is None
    meta = json.loads((out / "best/kexue_extraction.json").read_text())
    schema = load_extraction_splits("relation", "cmeie_subset", with_train=False, eval_limit=1).schema
    assert meta["task"] == "relation" and tuple(meta["predicates"]) == schema.predicates
    assert load_relation_model(str(out)).task.predicates == schema.predicates
    src, dst = tmp_path / "in.txt", tmp_path / "out.jsonl"
    src.write_text("产后抑郁症@区分产后抑郁症与轻度情绪失调（产后忧郁或“婴儿忧郁”）是重要的。\n"
                   "慢性胰腺炎@ ###低剂量放射 自1964年起，有几项病例系列报道称外照射 (5-50Gy) 可以有效改善慢性胰腺炎患者的疼痛症状。\n",
                   encoding="utf-8")
    main(["predict", "relation", "--model", str(out), "--input", str(src), "--output", str(dst)])
    records = [json.loads(line) for line in dst.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 2
    for r in records:
        for rel in r["relations"]:
            assert r["text"][rel["subject_start"]:rel["subject_end"]] == rel["subject"]
            assert r["text"][rel["object_start"]:rel["object_end"]] == rel["object"]
            assert rel["predicate"] in meta["predicates"]
    with pytest.raises(CheckpointError, match="relation"):
        from kexue.tasks.event import load_event_model
        load_event_model(str(out))


@pytest.mark.parametrize("data", ["duie2.0_subset", "cmeie_subset"])
def test_oracle_scores_decode_to_gold_triples(data, kexue_data):
    """Gold labels as scores -> the recipe's decode -> exactly the gold triples and their character spans (on a
    character vocabulary; the few triples whose strings are not on token boundaries are the only misses)."""
    splits = load_extraction_splits("relation", data, with_train=False, eval_limit=32)
    examples = splits.dev
    tok = Tokenizer.train_new([e.text for e in examples], kind="char", vocab_size=8000)
    task = RelationTask(splits.schema.predicates)
    items, dropped = encode_split(task, tok, examples, max_length=192)
    batch = collate(items, task, tok.pad_token_id, with_labels=True)
    length = batch["input_ids"].shape[1]
    outputs = tuple(sparse_labels_to_logits(batch[k], length) for k in ("entity_labels", "head_labels",
                                                                          "tail_labels"))
    preds = task.decode(task.build_head(8), outputs, batch, items)
    gold = [task.gold(e) for e in examples]
    missed = sum(len(g - p) for p, g in zip(preds, gold))
    assert all(p <= g for p, g in zip(preds, gold))
    assert missed == dropped
    assert task.score(preds, gold)["f1"] == pytest.approx(100.0 if not dropped else
                                                          200 * (sum(map(len, gold)) - missed)
                                                          / (2 * sum(map(len, gold)) - missed))
    for p, e in zip(preds, examples):
        for s, s0, s1, _, o, o0, o1 in p:
            assert e.text[s0:s1] == s and e.text[o0:o1] == o


def test_keep_top_cells_bounds_candidates_without_changing_few():
    import torch

    scores = torch.full((1, 2, 4, 4), -5.0)
    scores[0, 0, 1, 2], scores[0, 0, 0, 3], scores[0, 1, 2, 2] = 3.0, 1.0, 2.0
    assert torch.equal(keep_top_cells(scores, 16), scores)
    kept = keep_top_cells(scores, 1)
    assert (kept > 0).sum().item() == 2 and kept[0, 0, 1, 2] == 3.0 and kept[0, 0, 0, 3] < -1e30
    pooled = keep_top_cells(scores, 1, per_head=False)
    assert (pooled > 0).sum().item() == 1 and pooled[0, 0, 1, 2] == 3.0


def test_wrong_task_dataset_is_an_error(kexue_data):
    with pytest.raises(ConfigError, match="ner dataset"):
        load_extraction_splits("relation", "cluener2020")
