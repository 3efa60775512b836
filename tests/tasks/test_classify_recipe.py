"""The classification recipe end to end through the CLI on a tiny random BERT and 64 real sst2 examples."""

from __future__ import annotations

import io
import json

import pytest
import torch

import kexue.cli.classify  # noqa: F401  (registers the commands until app.py imports it)
from kexue.cli import main
from kexue.data.readers.classification import load_classification
from kexue.errors import ConfigError
from kexue.tasks.classification import ClassifyConfig, accuracy, make_features
from kexue.tasks.classification_model import load_classifier


def _train(tmp_path, model_dir, name: str, *extra: str) -> dict:
    out = tmp_path / name
    main(["train", "classify", "--model", str(model_dir), "--data", "sst2", "--train-limit", "64",
          "--eval-limit", "64", "--batch-size", "16", "--epochs", "1", "--lr", "1e-3", "--max-length", "48",
          "--output", str(out), "--no-progress", *extra])
    return json.loads((out / "results.json").read_text())


def test_fgm_ema_run_writes_folder_records_techniques_and_predicts(tmp_path, tiny_bert_dir, kexue_data,
                                                                    capsys, monkeypatch):
    results = _train(tmp_path, tiny_bert_dir, "run", "--adversarial", "fgm", "--epsilon", "0.5", "--ema", "0.9",
                     "--accumulation-steps", "2")
    out = tmp_path / "run"
    for name in ("config.json", "metrics.jsonl", "results.json", "best/model.safetensors",
                 "best/kexue_classifier.json", "best/classifier_head.safetensors", "last/model.safetensors"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["classify"]["adversarial"] == "fgm" and config["classify"]["epsilon"] == 0.5
    assert config["classify"]["ema"] == 0.9
    assert config["techniques"]["hooks"] == ["FGMHook", "EMAHook"]
    assert config["techniques"]["accumulation"] == "classic"
    assert config["trainer"]["gradient_accumulation_steps"] == 2
    assert results["fit"]["global_step"] == 2  # 64 examples / 16 per batch / 2 micro-batches per step
    # the reported accuracy is that of the saved best model, re-evaluated from disk
    best = load_classifier(out / "best")
    dev = load_classification("sst2", "dev")[:64]
    assert accuracy(best, make_features(best, dev)) == pytest.approx(results["after"]["dev"]["accuracy"])
    # predict: text lines in, JSON lines out, same argmax as the model
    texts = [e.text for e in dev[:3]]
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(texts) + "\n"))
    main(["predict", "classify", "--model", str(out)])
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    feats = make_features(best, dev[:3])
    with torch.no_grad():
        logits = torch.cat([best(torch.tensor([f["input_ids"]]), torch.tensor([f["attention_mask"]]),
                                 torch.tensor([f["token_type_ids"]])) for f in feats])
    assert [r["label"] for r in rows] == logits.argmax(-1).tolist()
    for r, p in zip(rows, logits.softmax(-1)):
        assert r["probs"] == pytest.approx(p.tolist(), abs=1e-5)


def test_lora_with_gradient_penalty_and_in_momentum_accumulation(tmp_path, tiny_bert_dir, kexue_data):
    results = _train(tmp_path, tiny_bert_dir, "lora", "--lora-rank", "4", "--gradient-penalty", "1.0",
                     "--optimizer", "accum-adamw", "--accumulation-steps", "2", "--ema", "0.81")
    tech = results["techniques"]
    # rank 4 on qkv (32 -> 96) and attention.output (32 -> 32) of 2 layers, plus the 32 -> 2 head
    assert tech["parameters"]["trainable"] == 2 * (4 * (32 + 96) + 4 * (32 + 32)) + 32 * 2 + 2
    assert tech["accumulation"] == "in-momentum" and results["fit"]["global_step"] == 4  # micro-steps
    assert tech["ema_decay_per_trainer_step"] == pytest.approx(0.9)
    best = load_classifier(tmp_path / "lora" / "best")  # LoRA merged: a plain backbone
    assert not any("lora_" in n for n, _ in best.named_parameters())


def test_ladder_side_and_child_tuning_d(tmp_path, tiny_bert_dir, kexue_data):
    ladder = _train(tmp_path, tiny_bert_dir, "ladder", "--ladder-side", "--side-hidden", "16", "--side-layers", "2")
    assert ladder["techniques"]["parameters"]["trainable"] < 0.2 * ladder["techniques"]["parameters"]["total"]
    assert load_classifier(tmp_path / "ladder" / "best").ladder_options["side_layers"] == 2
    ct = _train(tmp_path, tiny_bert_dir, "ctd", "--child-tuning", "D", "--reserve-p", "0.2", "--fisher-batches", "2")
    assert ct["techniques"]["optimizer"] == "child-tuning-d" and ct["techniques"]["hooks"] == ["ChildTuningDHook"]


def test_conflicting_options_are_config_errors(tmp_path, tiny_bert_dir):
    with pytest.raises(ConfigError, match="--child-tuning"):
        ClassifyConfig(child_tuning="F", optimizer="accum-adamw")
    with pytest.raises(ConfigError, match="exclusive"):
        ClassifyConfig(lora_rank=4, ladder_side=True)
    with pytest.raises(ConfigError, match="--optimizer"):
        ClassifyConfig(optimizer="lamb")
    with pytest.raises(SystemExit) as err:  # FGM needs a trainable embedding matrix; LoRA freezes it
        _train(tmp_path, tiny_bert_dir, "bad", "--lora-rank", "2", "--adversarial", "fgm")
    assert err.value.code == 1  # a kexue error (ConfigError), not a usage error
