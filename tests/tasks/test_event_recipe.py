"""The event (GPLinker) recipe end to end through the CLI on a tiny from-scratch Chinese model (DuEE, internal
data: tests only); offsets round-trip; oracle decoding through the recipe's own label and decode path."""

from __future__ import annotations

import json

import pytest

import kexue.cli.extraction  # noqa: F401  (registers the extraction commands)
from kexue.cli import main
from kexue.data.tokenization import Tokenizer
from kexue.extraction.gplinker_relation import sparse_labels_to_logits
from kexue.tasks.event import EventTask
from kexue.tasks.extraction_common import collate, encode_split
from kexue.tasks.extraction_data import load_extraction_splits


def test_train_and_predict_events(tmp_path, kexue_data):
    out = tmp_path / "run"
    main(["train", "event", "--model", "scratch", "--scratch-hidden", "32", "--scratch-layers", "1",
          "--scratch-heads", "2", "--head-size", "16", "--max-length", "64", "--data", "duee1.0",
          "--train-limit", "48", "--eval-limit", "16", "--batch-size", "16", "--epochs", "1", "--lr", "1e-3",
          "--output", str(out), "--no-progress"])
    results = json.loads((out / "results.json").read_text())
    assert set(results["dev"]) == {"precision", "recall", "f1", "event_f1"}
    meta = json.loads((out / "best/kexue_extraction.json").read_text())
    assert meta["task"] == "event" and ["组织关系-裁员", "trigger"] in meta["labels"]
    src, dst = tmp_path / "in.txt", tmp_path / "out.jsonl"
    src.write_text("消失的“外企光环”，5月份在华裁员900余人，香饽饽变“臭”了\n前两天，被称为 “仅次于苹果的软件服务商” 的 Oracle 裁员\n",
                   encoding="utf-8")
    main(["predict", "event", "--model", str(out), "--input", str(src), "--output", str(dst)])
    records = [json.loads(line) for line in dst.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 2
    for r in records:
        for ev in r["events"]:
            for span in [ev["trigger"], *ev["arguments"]]:
                assert r["text"][span["start"]:span["end"]] == span["text"]


def test_oracle_scores_decode_to_gold_events(kexue_data):
    """Gold labels as scores -> the recipe's decode -> the gold events; argument F1 is 100 where every argument is
    on token boundaries (the oracle F1 over the slice is asserted against the count of inexpressible arguments)."""
    splits = load_extraction_splits("event", "duee1.0", with_train=False, eval_limit=16)
    examples = splits.dev
    tok = Tokenizer.train_new([e.text for e in examples], kind="char", vocab_size=8000)
    task = EventTask(tuple(splits.schema.labels()))
    items, dropped = encode_split(task, tok, examples, max_length=128)
    batch = collate(items, task, tok.pad_token_id, with_labels=True)
    length = batch["input_ids"].shape[1]
    outputs = tuple(sparse_labels_to_logits(batch[k], length) for k in ("argu_labels", "head_link_labels",
                                                                          "tail_link_labels"))
    preds = task.decode(task.build_head(8), outputs, batch, items)
    gold = [task.gold(e) for e in examples]
    clean = [n for n, it in enumerate(items) if task.encode(examples[n], it) == 0]
    assert len(clean) >= len(examples) - dropped
    sub = task.score([preds[n] for n in clean], [gold[n] for n in clean])
    assert sub["f1"] == pytest.approx(100.0)
    for p, e in zip(preds, examples):
        for event in p:
            for _, _, text, start in event:
                assert e.text[start:start + len(text)] == text
