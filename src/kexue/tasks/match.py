"""The multi-task matching recipe of the Sohu 2021 baseline: ``kexue train match --tasks T1,T2,... --conditional-ln``.

One cross-encoder (:class:`~kexue.tasks.match_model.MatchModel`) is trained on the pairs of every listed task, all
tasks mixed in each epoch (length-bucketed batches), with a softmax over {0, 1}. With ``--conditional-ln`` the task
id conditions every LayerNorm (zero-initialised ``W_γ``, ``W_β``: at step 0 the model is the pretrained one); without
it the same model never sees the task. "Separate models" are runs with one task each (``--tasks afqmc``).

Evaluation: per task, accuracy x100 and positive-class F1 x100 (``2TP / (2TP + FP + FN)``, the contest's metric) of
the argmax on the task's valid and test splits; ``f1`` / ``accuracy`` are their means over the tasks, and the valid
``f1`` selects ``best/``. The splits, the binarisation of each task and the overlap guard are those of
:mod:`kexue.tasks.match_data`.

Source: "搜狐文本匹配:基于条件LayerNorm的多任务baseline", https://kexue.fm/archives/8337 (spec §5). Not done here:
the baseline's weight EMA (0.9999) and its six Sohu sub-tasks (their training files are not public).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kexue.data.bucketing import LengthBucketBatchSampler
from kexue.data.collate import pad_batch
from kexue.errors import ConfigError
from kexue.tasks.common import ScratchModel, build_backbone, jsonable
from kexue.tasks.match_data import TaskData, load_match_tasks
from kexue.tasks.match_model import MatchModel, load_match_model
from kexue.train import Trainer, TrainerConfig, prepare_run_dir
from kexue.train.seed import seed_everything


@dataclass
class MatchConfig:
    """Options of ``kexue train match`` (the trainer's options live in :class:`kexue.train.TrainerConfig`).

    Args:
        model: ``minilm``, a checkpoint folder, or ``scratch`` (character vocabulary from the training pairs).
        tasks: task names of :data:`kexue.tasks.match_data.MATCH_TASKS`; the position is the task id.
        conditional_ln: ``--conditional-ln``: condition every norm on the task id.
        cond_dim: width of the task embedding (128 as the baseline).
        max_length: tokens per pair. dropout: before the head.
        valid_size: pairs cut from train as the valid split of a task that has none (shuffled by ``--seed``).
        train_limit / eval_limit: first N training pairs of each task / pairs of each evaluated split.
    """

    model: str = "minilm"
    tasks: tuple[str, ...] = ("afqmc", "stsb_zh", "simclue_sample")
    conditional_ln: bool = True
    cond_dim: int = 128
    max_length: int = 128
    dropout: float = 0.1
    valid_size: int = 1000
    train_limit: int | None = None
    eval_limit: int | None = None
    eval_batch_size: int = 128
    scratch: ScratchModel = field(default_factory=ScratchModel)

    def __post_init__(self) -> None:
        self.tasks = tuple(self.tasks)
        if self.cond_dim < 1:
            raise ConfigError(f"--cond-dim: expected an integer >= 1, got {self.cond_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"--dropout: expected a probability in [0, 1), got {self.dropout}")
        for name in ("train_limit", "eval_limit"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise ConfigError(f"--{name.replace('_', '-')}: expected an integer >= 2, got {value}")
        if self.conditional_ln and len(self.tasks) < 2:
            raise ConfigError("--conditional-ln: needs at least two --tasks (one task has nothing to condition on); "
                              "use --no-conditional-ln for a single-task model")


def make_features(model: MatchModel, pairs: Sequence[tuple[str, str, int]], task_id: int) -> list[dict[str, Any]]:
    """Tokenized pairs with ``label`` and ``task_id``."""
    feats = model.tokenize([p[0] for p in pairs], [p[1] for p in pairs])
    for f, p in zip(feats, pairs):
        f["label"], f["task_id"] = int(p[2]), task_id
    return feats


def compute_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy of the logits against ``batch["label"]``."""
    logits = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"), batch["task_id"])
    return nn.functional.cross_entropy(logits.float(), batch["label"])


@torch.no_grad()
def predict(model: MatchModel, features: Sequence[dict[str, Any]], batch_size: int = 128) -> torch.Tensor:
    """Predicted labels ``[N]`` (argmax, int64) in the order of ``features``; batches are length-sorted."""
    device = next(model.parameters()).device
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    out = torch.empty(len(features), dtype=torch.long)
    was_training = model.training
    model.eval()
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = pad_batch([features[i] for i in idx], pad_token_id=model.tokenizer.pad_token_id)
        logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                       batch["token_type_ids"].to(device), batch["task_id"].to(device))
        out[torch.tensor(idx)] = logits.argmax(-1).cpu()
    model.train(was_training)
    return out


def binary_scores(pred: Sequence[int], gold: Sequence[int]) -> dict[str, float]:
    """``{"accuracy", "f1"}`` x100 of 0/1 predictions; F1 of the positive class, ``2TP/(2TP+FP+FN)`` (0 when the
    denominator is 0)."""
    tp = sum(1 for p, g in zip(pred, gold) if p == 1 and g == 1)
    fp = sum(1 for p, g in zip(pred, gold) if p == 1 and g == 0)
    fn = sum(1 for p, g in zip(pred, gold) if p == 0 and g == 1)
    correct = sum(1 for p, g in zip(pred, gold) if p == g)
    denominator = 2 * tp + fp + fn
    return {"accuracy": 100.0 * correct / max(len(gold), 1), "f1": 100.0 * 2 * tp / denominator if denominator else 0.0}


def evaluate_tasks(model: MatchModel, per_task: dict[str, list[dict[str, Any]]], batch_size: int = 128
                   ) -> dict[str, float]:
    """``{task}_accuracy``, ``{task}_f1`` for each task and their means ``accuracy``, ``f1``."""
    metrics: dict[str, float] = {}
    for name, feats in per_task.items():
        scores = binary_scores(predict(model, feats, batch_size).tolist(), [f["label"] for f in feats])
        metrics.update({f"{name}_{k}": v for k, v in scores.items()})
    for key in ("accuracy", "f1"):
        metrics[key] = sum(metrics[f"{t}_{key}"] for t in per_task) / len(per_task)
    return metrics


def build_model(cfg: MatchConfig, data: Sequence[TaskData]) -> MatchModel:
    """The match model of ``cfg`` over a pretrained (or, for ``scratch``, a new) backbone."""
    texts = [t for d in data for p in d.train for t in p[:2]] if cfg.model == "scratch" else []
    backbone, tokenizer = build_backbone(cfg.model, texts, cfg.scratch, cfg.max_length)
    return MatchModel(backbone, tokenizer, cfg.tasks, cfg.conditional_ln, cfg.cond_dim, cfg.dropout, cfg.max_length)


def train_match(cfg: MatchConfig, trainer_cfg: TrainerConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train one model on every task of ``cfg.tasks``, keep the best mean valid F1, evaluate valid/test with ``best/``.

    Returns:
        ``{"tasks", "conditional_ln", "data": {task: sizes, rule, removed overlaps}, "before", "after":
        {"valid": metrics, "test": metrics}, "best_dir", "fit"}``, also written to ``<output_dir>/results.json``.

    Raises:
        ConfigError: bad options or missing files; DataFormatError: a malformed line (both before any work).
    """
    data = load_match_tasks(cfg.tasks, valid_size=cfg.valid_size, seed=trainer_cfg.seed,
                            train_limit=cfg.train_limit, eval_limit=cfg.eval_limit)
    prepare_run_dir(trainer_cfg, {"task": "match", "match": cfg}, log=log)
    for d in data:
        log(f"{d.name}: train {len(d.train)}, valid {len(d.valid)}, test {len(d.test)}; {d.removed_overlaps} "
            f"training pairs removed (they occur in an evaluated split); {d.rule}")
    seed_everything(trainer_cfg.seed)  # --seed decides the head's, the task embedding's (and a scratch encoder's) init
    model = build_model(cfg, data)
    features = [f for i, d in enumerate(data) for f in make_features(model, d.train, i)]
    valid = {d.name: make_features(model, d.valid, i) for i, d in enumerate(data)}
    test = {d.name: make_features(model, d.test, i) for i, d in enumerate(data)}
    trainer_cfg = dataclasses.replace(trainer_cfg, metric_for_best=trainer_cfg.metric_for_best or "f1")
    sampler = LengthBucketBatchSampler([len(f["input_ids"]) for f in features], trainer_cfg.batch_size,
                                       seed=trainer_cfg.seed, drop_last=trainer_cfg.drop_last)

    def batches(epoch: int, _generator: torch.Generator) -> list[list[int]]:
        sampler.set_epoch(epoch)
        return [b.tolist() for b in sampler.global_batches()]

    pad_id = model.tokenizer.pad_token_id
    before = evaluate_tasks(model, valid, cfg.eval_batch_size)
    log("valid before training: " + ", ".join(f"{t} F1 {before[f'{t}_f1']:.2f}" for t in cfg.tasks))
    sizes = {d.name: {"train": len(d.train), "valid": len(d.valid), "test": len(d.test),
                      "removed_overlaps": d.removed_overlaps, "rule": d.rule} for d in data}
    trainer = Trainer(model, trainer_cfg, features, compute_loss=compute_loss,
                      collate_fn=lambda exs: pad_batch(exs, pad_token_id=pad_id),
                      evaluate=lambda m: evaluate_tasks(m, valid, cfg.eval_batch_size), batch_sampler=batches,
                      run_config={"task": "match", "match": jsonable(asdict(cfg)), "data": sizes})
    fit = trainer.fit()
    best_dir = Path(trainer_cfg.output_dir) / "best"
    best = load_match_model(best_dir)
    after = {"valid": evaluate_tasks(best, valid, cfg.eval_batch_size),
             "test": evaluate_tasks(best, test, cfg.eval_batch_size)}
    log("after training (best valid checkpoint), test: "
        + ", ".join(f"{t} acc {after['test'][f'{t}_accuracy']:.2f} F1 {after['test'][f'{t}_f1']:.2f}"
                    for t in cfg.tasks) + f"; mean F1 {after['test']['f1']:.2f}")
    results = {"tasks": list(cfg.tasks), "model": cfg.model, "conditional_ln": cfg.conditional_ln, "data": sizes,
               "before": {"valid": before}, "after": after, "best_dir": str(best_dir), "fit": jsonable(fit)}
    (Path(trainer_cfg.output_dir) / "results.json").write_text(
        json.dumps(jsonable(results), indent=2, allow_nan=False), encoding="utf-8")
    return results
