"""The STS recipe end to end on a tiny model and 64 real STS-B pairs, through the CLI."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from kexue.cli import main
from kexue.data.registry import load_pairs
from kexue.embeddings import SentenceEncoder
from kexue.errors import ConfigError
from kexue.tasks.sts import STSConfig, evaluate_split, load_splits


def _train(tmp_path, model_dir, *extra: str) -> dict:
    out = tmp_path / "run"
    main(["train", "sts", "--model", str(model_dir), "--data", "stsb_en", "--train-limit", "64",
          "--eval-limit", "64", "--batch-size", "16", "--epochs", "1", "--lr", "1e-3", "--output", str(out),
          "--no-progress", *extra])
    return json.loads((out / "results.json").read_text())


def test_cli_train_sts_writes_run_folder(tmp_path, tiny_bert_dir, kexue_data):
    results = _train(tmp_path, tiny_bert_dir)
    out = tmp_path / "run"
    for name in ("config.json", "metrics.jsonl", "plot.png", "results.json", "best/model.safetensors",
                 "best/kexue_encoder.json", "last/model.safetensors"):
        assert (out / name).is_file(), name
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(e["event"] == "eval" and "spearman" in e for e in events)
    assert set(results["before"]) == {"dev", "test"} and set(results["after"]) == {"dev", "test"}
    # The reported "after" numbers are those of the saved best model, re-evaluated from disk.
    encoder = SentenceEncoder.from_pretrained(out / "best")
    splits = load_splits("stsb_en", with_train=False, eval_limit=64)
    again = evaluate_split(encoder, splits.dev)
    assert again["spearman"] == pytest.approx(results["after"]["dev"]["spearman"], abs=1e-6)
    config = json.loads((out / "config.json").read_text())
    assert config["sts"]["loss"] == "cosent" and config["trainer"]["learning_rate"] == 1e-3


def test_cli_mse_and_softmax_losses(tmp_path, tiny_bert_dir, kexue_data):
    results = _train(tmp_path, tiny_bert_dir, "--loss", "mse", "--pooling", "first-last-avg")
    assert np.isfinite(results["after"]["test"]["spearman"])
    with pytest.raises(SystemExit) as err:  # graded STS-B scores cannot feed a softmax classifier
        main(["train", "sts", "--model", str(tiny_bert_dir), "--data", "stsb_en", "--loss", "softmax",
              "--train-limit", "8", "--eval-limit", "8", "--output", str(tmp_path / "x"), "--no-progress"])
    assert err.value.code == 1  # a kexue error (ConfigError), not a usage error


def test_binary_data_reports_dev_threshold_on_test(tiny_bert_dir, kexue_data):
    encoder = SentenceEncoder.from_pretrained(tiny_bert_dir, max_length=32)
    dev = load_pairs("lcqmc", "dev")[:200]
    test = load_pairs("lcqmc", "test")[:200]
    dev_metrics = evaluate_split(encoder, dev)
    assert {"accuracy", "f1", "threshold", "spearman"} <= set(dev_metrics)
    frozen = evaluate_split(encoder, test, threshold=dev_metrics["threshold"])
    assert frozen["threshold"] == dev_metrics["threshold"]


def test_encode_and_similarity_commands(tmp_path, tiny_bert_dir, capsysbinary, monkeypatch):
    texts = "A man is playing a flute.\nA man plays the flute.\nA dog runs.\n"
    src = tmp_path / "in.txt"
    src.write_text(texts, encoding="utf-8")
    out = tmp_path / "v.npy"
    main(["encode", "--model", str(tiny_bert_dir), "--input", str(src), "--output", str(out)])
    vectors = np.load(out)
    expected = SentenceEncoder.from_pretrained(tiny_bert_dir).encode(texts.splitlines())
    assert vectors.shape == (3, 32) and np.allclose(vectors, expected, atol=1e-6)
    # stdin -> stdout .npy
    monkeypatch.setattr("sys.stdin", io.StringIO(texts))
    main(["encode", "--model", str(tiny_bert_dir)])
    streamed = np.load(io.BytesIO(capsysbinary.readouterr().out))
    assert np.allclose(streamed, expected, atol=1e-6)
    main(["similarity", "--model", str(tiny_bert_dir), "A man is playing a flute.", "A man plays the flute."])
    cos = float(capsysbinary.readouterr().out.decode().strip())
    a, b = expected[0] / np.linalg.norm(expected[0]), expected[1] / np.linalg.norm(expected[1])
    assert cos == pytest.approx(float(a @ b), abs=1e-5)


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="--loss"):
        STSConfig(loss="triplet")
    with pytest.raises(ConfigError, match="--train-limit"):
        STSConfig(train_limit=1)
