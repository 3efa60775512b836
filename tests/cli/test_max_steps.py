"""--max-steps counts optimizer updates for every optimizer: classic accumulation (adamw) and accumulation inside
the momentum (accum-adamw) consume the same number of batches."""

from __future__ import annotations

import json

from kexue.cli import main


def _final_epoch(tmp_path, model, optimizer: str) -> float:
    out = tmp_path / optimizer
    try:
        main(["train", "classify", "--model", str(model), "--data", "sst2", "--train-limit", "32", "--eval-limit", "8",
              "--batch-size", "8", "--max-steps", "3", "--accumulation-steps", "2", "--optimizer", optimizer,
              "--no-progress", "--output", str(out)])
    except SystemExit as exit_info:
        assert exit_info.code in (0, None)
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [e for e in events if e["event"] == "train"][-1]["epoch"]


def test_max_steps_means_optimizer_updates_for_every_optimizer(tmp_path, tiny_bert_dir, kexue_data):
    # 3 updates x 2 batches of 8 = 48 examples = 1.5 epochs of the 32 training examples (4 batches each)
    assert _final_epoch(tmp_path, tiny_bert_dir, "adamw") == 1.5
    assert _final_epoch(tmp_path, tiny_bert_dir, "accum-adamw") == 1.5
