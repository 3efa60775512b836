"""``--head-lr``: every recipe's task head trains at its own absolute learning rate while the encoder stays at
``--lr``; the value is recorded in config.json. Checked in the optimizer the Trainer really used (its param groups
as saved in the last checkpoint), not in the code that builds them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import kexue.cli.classify  # noqa: F401  (registers the commands)
import kexue.cli.extraction  # noqa: F401
from kexue.cli import main
from kexue.errors import ConfigError
from kexue.optim.param_groups import head_lr_multipliers
from kexue.tasks.classification import ClassifyConfig
from kexue.tasks.ner import NerConfig

TINY_SCRATCH = ["--model", "scratch", "--scratch-hidden", "32", "--scratch-layers", "1", "--scratch-heads", "2",
                "--head-size", "16", "--max-length", "64"]


def last_state(run: Path) -> dict:
    """The training state (model, optimizer, scheduler ...) of the run's newest checkpoint."""
    newest = sorted((run / "checkpoints").glob("step-*"))[-1]
    return torch.load(newest / "training_state.pt", map_location="cpu", weights_only=False)


def saved_group_lrs(run: Path) -> dict[str, float]:
    """``{parameter name: initial lr of its param group}`` from the optimizer state of the run's last checkpoint."""
    state = last_state(run)
    lrs: dict[str, float] = {}
    for group in state["optimizer"]["param_groups"]:
        for name in group["param_names"]:
            lrs[name] = group["initial_lr"]
    return lrs


def assert_head_split(lrs: dict[str, float], head_prefix: str, head_lr: float, lr: float) -> None:
    head = {n: v for n, v in lrs.items() if n.startswith(head_prefix)}
    rest = {n: v for n, v in lrs.items() if not n.startswith(head_prefix)}
    assert head and rest
    assert all(v == pytest.approx(head_lr, rel=1e-12) for v in head.values()), head
    assert all(v == pytest.approx(lr, rel=1e-12) for v in rest.values())


def test_multipliers_are_the_ratio_and_bad_values_name_the_flag():
    assert head_lr_multipliers(2e-5, 1e-3, ("head",)) == {"head": pytest.approx(50.0)}
    assert head_lr_multipliers(4e-5, 1e-5, ("a", "b")) == {"a": pytest.approx(0.25), "b": pytest.approx(0.25)}
    assert head_lr_multipliers(2e-5, None, ("head",)) == {}
    with pytest.raises(ConfigError, match="--head-lr"):
        head_lr_multipliers(2e-5, 0.0, ("head",))
    with pytest.raises(ConfigError, match="--head-lr"):
        NerConfig(head_lr=-1e-3)
    with pytest.raises(ConfigError, match="--head-lr"):
        ClassifyConfig(head_lr=0.0)


def test_ner_crf_head_gets_head_lr_and_crf_multiplier_stays_separate(tmp_path, tiny_bert_dir, kexue_data):
    out = tmp_path / "run"
    main(["train", "ner", "--model", str(tiny_bert_dir), "--head", "crf", "--crf-lr-multiplier", "100",
          "--head-lr", "3e-3", "--lr", "2e-4", "--train-limit", "32", "--eval-limit", "8", "--batch-size", "16",
          "--epochs", "1", "--max-length", "48", "--output", str(out), "--no-progress"])
    assert '"head_lr": 0.003' in (out / "config.json").read_text()
    lrs = saved_group_lrs(out)
    assert any(n.startswith("head.crf.") for n in lrs)
    assert_head_split(lrs, "head.", 3e-3, 2e-4)
    meta = json.loads((out / "best/kexue_extraction.json").read_text())
    assert meta["crf_lr_multiplier"] == 100  # the re-parameterisation is kept, on top of --head-lr


def test_ner_default_head_lr_is_5e_3_and_equal_rates_give_one_rate(tmp_path, tiny_bert_dir, kexue_data):
    common = ["--model", str(tiny_bert_dir), "--head", "global_pointer", "--lr", "2e-4", "--train-limit", "16",
              "--eval-limit", "8", "--batch-size", "16", "--epochs", "1", "--max-length", "48", "--no-progress"]
    main(["train", "ner", *common, "--output", str(tmp_path / "default")])
    assert '"head_lr": 0.005' in (tmp_path / "default" / "config.json").read_text()
    assert_head_split(saved_group_lrs(tmp_path / "default"), "head.", 5e-3, 2e-4)
    main(["train", "ner", *common, "--head-lr", "2e-4", "--output", str(tmp_path / "same")])
    state = last_state(tmp_path / "same")
    assert {g["initial_lr"] for g in state["optimizer"]["param_groups"]} == {2e-4}


@pytest.mark.parametrize("command,data", [("relation", "cmeie_subset"), ("event", "duee1.0")])
def test_gplinker_recipes_take_head_lr(command, data, tmp_path, kexue_data):
    out = tmp_path / "run"
    main(["train", command, *TINY_SCRATCH, "--data", data, "--train-limit", "16", "--eval-limit", "8",
          "--batch-size", "16", "--epochs", "1", "--lr", "1e-4", "--head-lr", "5e-3", "--output", str(out),
          "--no-progress"])
    text = (out / "config.json").read_text()
    assert '"head_lr": 0.005' in text
    assert_head_split(saved_group_lrs(out), "head.", 5e-3, 1e-4)


def test_classify_head_lr_reaches_the_classifier_layer(tmp_path, tiny_bert_dir, kexue_data):
    out = tmp_path / "run"
    main(["train", "classify", "--model", str(tiny_bert_dir), "--data", "sst2", "--train-limit", "32",
          "--eval-limit", "16", "--batch-size", "16", "--epochs", "1", "--lr", "1e-4", "--head-lr", "2e-3",
          "--max-length", "32", "--output", str(out), "--no-progress"])
    assert '"head_lr": 0.002' in (out / "config.json").read_text()
    assert_head_split(saved_group_lrs(out), "classifier.", 2e-3, 1e-4)
