"""``train classify --lora-variant`` and ``--class-thresholds`` end to end on a tiny random BERT and real data."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import kexue.cli.classify  # noqa: F401  (registers the commands)
from kexue.adapters.lora_variants import LoRALinear
from kexue.cli import main
from kexue.data.readers.classification import TextExample, load_classification
from kexue.errors import ConfigError
from kexue.metrics.threshold import binary_metrics, find_best_threshold
from kexue.tasks.classification import ClassifyConfig, accuracy, make_features, predict_logits
from kexue.tasks.classification_model import load_classifier


def _train(tmp_path, model_dir, name: str, *extra: str, data: str = "sst2") -> dict:
    out = tmp_path / name
    main(["train", "classify", "--model", str(model_dir), "--data", data, "--train-limit", "64",
          "--eval-limit", "64", "--batch-size", "16", "--epochs", "1", "--lr", "1e-2", "--max-length", "48",
          "--output", str(out), "--no-progress", *extra])
    return json.loads((out / "results.json").read_text())


def _qkv(folder) -> torch.Tensor:
    weights = load_file(str(folder / "model.safetensors"))
    key = next(k for k in sorted(weights) if k.endswith("attention.self.query.weight") or k.endswith("qkv.weight"))
    return weights[key].double()


@pytest.mark.parametrize("variant,rank_bound", [("zero-b", 2), ("symmetric", 4), ("additive", 4),   # AB - A0B0: rank <= 2r
                                                ("fixed-projection", 2), ("additive-projection", 4),
                                                ("random-projection", None)])
def test_lora_variants_train_save_merged_and_reload(tmp_path, tiny_bert_dir, kexue_data, variant, rank_bound):
    results = _train(tmp_path, tiny_bert_dir, variant, "--lora-rank", "2", "--lora-variant", variant,
                     "--lora-target", "qkv")
    out = tmp_path / variant
    config = json.loads((out / "config.json").read_text())
    assert config["classify"]["lora_variant"] == variant
    # 2 layers x qkv (in 32, out 96): r (n + m) = 2 * 128 factor parameters each
    assert config["techniques"]["lora_variant"]["factor_parameters"] == 2 * 2 * (32 + 96)
    best = load_classifier(out / "last")
    assert not any(isinstance(m, LoRALinear) for m in best.modules())          # saved merged, plain Linear
    dev = load_classification("sst2", "dev")[:64]
    reloaded = load_classifier(out / "best")
    assert accuracy(reloaded, make_features(reloaded, dev)) == pytest.approx(results["after"]["dev"]["accuracy"])
    # the training changed only the target weights, by a low-rank increment for the fixed/additive forms
    from kexue.models.auto import load_encoder
    start = load_encoder(tiny_bert_dir)[0].state_dict()
    end = best.encoder.state_dict()
    changed = {k for k in start if not torch.equal(start[k], end[k])}
    assert changed and all(k.endswith("qkv.weight") for k in changed), changed
    for k in changed:
        delta = (end[k] - start[k]).double()
        if rank_bound is not None:
            assert int(torch.linalg.matrix_rank(delta, atol=1e-6)) <= rank_bound
        else:
            assert int(torch.linalg.matrix_rank(delta, atol=1e-6)) > 4     # random projections: not low rank


def test_lora_variant_refusals():
    with pytest.raises(ConfigError, match="--lora-rank"):
        ClassifyConfig(lora_variant="symmetric")
    with pytest.raises(ConfigError, match="--lora-variant"):
        ClassifyConfig(lora_rank=4, lora_variant="svd")
    with pytest.raises(ConfigError, match="--optimizer accum-adamw"):
        ClassifyConfig(lora_rank=4, lora_variant="random-projection", optimizer="accum-adamw")


def test_class_thresholds_frozen_on_dev_applied_to_test_on_pairs(tmp_path, tiny_bert_dir, kexue_data, capsys,
                                                                 monkeypatch):
    # a pair set: afqmc's train and dev, and 64 labelled LCQMC test pairs as --test
    lines = (kexue_data / "lcqmc" / "test.txt").read_text(encoding="utf-8").splitlines()[:64]
    test_file = tmp_path / "test.tsv"
    test_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    results = _train(tmp_path, tiny_bert_dir, "thr", "--class-thresholds", "--test", str(test_file), data="afqmc")
    out = tmp_path / "thr"
    best = load_classifier(out / "best")
    assert best.pair
    saved = json.loads((out / "best" / "class_thresholds.json").read_text())
    assert saved["searched_on"] == "dev"
    dev = load_classification("afqmc", "dev")[:64]
    test = [TextExample(*line.split("\t")[:2], int(line.split("\t")[2])) for line in lines]
    probs = {s: predict_logits(best, make_features(best, ex)).softmax(-1).double().numpy()
             for s, ex in (("dev", dev), ("test", test))}
    labels = {"dev": np.array([e.label for e in dev]), "test": np.array([e.label for e in test])}
    weights = np.array(saved["thresholds"])
    for split in ("dev", "test"):
        want = 100 * float(((probs[split] * weights).argmax(1) == labels[split]).mean())
        assert results["after"][split]["accuracy_class_thresholds"] == pytest.approx(want)
    assert results["after"]["dev"]["accuracy_class_thresholds"] >= results["after"]["dev"]["accuracy"] - 1e-9
    # P(y=1): the threshold is the dev sweep's, and test is scored at exactly that threshold
    t = find_best_threshold(probs["dev"][:, 1], labels["dev"]).threshold
    assert saved["p1_threshold"] == pytest.approx(t)
    assert results["after"]["test"]["p1_threshold"] == saved["p1_threshold"]
    want = 100 * binary_metrics(probs["test"][:, 1], labels["test"], t)[0]
    assert results["after"]["test"]["accuracy_p1_threshold"] == pytest.approx(want)
    # predict classify --class-thresholds uses the saved weights
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join("\t".join(line.split("\t")[:2]) for line in lines[:8])
                                                 + "\n"))
    main(["predict", "classify", "--model", str(out), "--class-thresholds"])
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["label"] for r in rows] == (probs["test"][:8] * weights).argmax(1).tolist()


def test_predict_class_thresholds_needs_them(tmp_path, tiny_bert_dir, kexue_data, monkeypatch, capsys):
    _train(tmp_path, tiny_bert_dir, "plain", "--max-steps", "1")
    monkeypatch.setattr("sys.stdin", io.StringIO("a fine film\n"))
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "classify", "--model", str(tmp_path / "plain"), "--class-thresholds"])
    assert exit_info.value.code == 1
    assert "--class-thresholds: no class_thresholds.json" in capsys.readouterr().err
