"""The classification recipe: fine-tune an encoder + linear head on single texts or text pairs (sst2, sentiment_zh,
afqmc), with every training technique of the training-techniques articles as an option, all recorded in the run's
config.json.

Techniques: AdamW / gradient accumulation inside the momentum (https://kexue.fm/archives/8634), ChildTuning-F/-D
(https://kexue.fm/archives/8764), FGM and the input-gradient penalty (https://kexue.fm/archives/7234), the
parameter-gradient penalty (https://kexue.fm/archives/8796), EMA of the weights, learning-rate multipliers
(https://kexue.fm/archives/7196), LoRA (https://kexue.fm/archives/9590) and Ladder Side-Tuning
(https://kexue.fm/archives/9138). Metric: accuracy x100 on dev (selects ``best/``) and test when labelled.
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
from kexue.data.readers.classification import (CLASSIFICATION_DATASETS, TextExample, labels_of, load_classification,
                                               resolve_classification)
from kexue.data.label_checks import check_class_labels
from kexue.data.splits import check_split_file, check_split_options, cut_dev_test
from kexue.errors import ConfigError
from kexue.optim.param_groups import head_lr_multipliers
from kexue.tasks.classification_lora import PROJECTION_VARIANTS, apply_variant, check_lora_variant, projected_factory
from kexue.tasks.classification_model import SequenceClassifier, load_classifier, with_lora
from kexue.tasks.common import SCRATCH, ScratchModel, build_backbone, jsonable
from kexue.train import EMAHook, Hook, Trainer, TrainerConfig, no_decay_parameter_names, prepare_run_dir
from kexue.train.seed import seed_everything
from kexue.train.technique_hooks import (OPTIMIZERS, ChildTuningDHook, FGMHook, GradientPenaltyHook,
                                         accumulation_trainer_config, build_optimizer_factory)

CHILD_TUNING = ("none", "F", "D")


@dataclass
class ClassifyConfig:
    """Options of the classification recipe (trainer options live in :class:`kexue.train.TrainerConfig`).

    Args:
        model: ``minilm``, a checkpoint folder, or ``scratch`` (a small BERT with a character vocabulary built from
            the training texts, :class:`kexue.tasks.common.ScratchModel`).
        data: a registered dataset (``sst2``, ``sentiment_zh``, ``afqmc``) or a path.
        pooling: ``cls`` or ``mean``. max_length: tokens per example. dropout: before the head.
        train_limit / eval_limit: use only the first N examples of train / of each evaluated split.
        optimizer: one of :data:`kexue.train.technique_hooks.OPTIMIZERS` (``--child-tuning`` picks the ChildTuning
            ones). accumulation_steps: k; classic (the Trainer's) for adamw/child-tuning, in-momentum for accum-*.
        child_tuning: ``none`` | ``F`` | ``D``; reserve_p: its p; child_tuning_apply_to: ``grad`` | ``update``.
        adversarial: ``none`` | ``fgm``; epsilon: FGM's ε; fgm_loss_mode: ``adv_only`` (Su) | ``clean_plus_adv``.
        gradient_penalty: ε of the input-gradient penalty (``None``: off); gradient_penalty_kind: ``input`` |
            ``parameter``.
        ema: EMA decay per optimizer update (``None``: off).
        lora_rank: LoRA rank (``None``: full fine-tuning); lora_alpha; lora_targets: module names.
        lora_variant: ``--lora-variant``: one of :data:`kexue.tasks.classification_lora.LORA_VARIANTS` (the
            article's own LoRA forms at rank ``lora_rank``; ``None``: peft's standard LoRA when ``lora_rank`` is set).
        class_thresholds: ``--class-thresholds``: search per-class weights (and, for two classes, a threshold on
            ``P(y=1)``) on dev with the best checkpoint and report test at them (:mod:`kexue.metrics.class_thresholds`).
        ladder_side: Ladder Side-Tuning with a side network of width ``side_hidden`` and ``side_layers`` blocks.
        lr_multipliers: ``{parameter-name pattern: multiplier}``.
        head_lr: the classifier layer's peak learning rate (``--head-lr``, absolute; the encoder stays at
            ``--lr``); ``None`` = the same as ``--lr``. An explicit ``lr_multipliers`` entry for ``classifier`` wins.
        fisher_batches: cap on ChildTuning-D's Fisher pass (``None``: one epoch).
        dev / test: ``--dev FILE`` / ``--test FILE`` instead of ``data``'s own splits (required, or ``split_ratio``,
            when ``data`` is a single file: it is never reused as dev or test).
        split_ratio: ``--split-ratio R``: cut dev and test (``R`` each, shuffled by the trainer's seed) from a
            single ``data`` file (:mod:`kexue.data.splits`).
        num_labels: ``--num-labels K``: the classes of the data (``None``: a registered dataset's count, else binary;
            a label outside is an error naming ``file:line``, :mod:`kexue.data.label_checks`).
    """

    model: str = "minilm"
    data: str = "sst2"
    pooling: str = "cls"
    max_length: int = 128
    dropout: float = 0.1
    train_limit: int | None = None
    eval_limit: int | None = None
    optimizer: str = "adamw"
    accumulation_steps: int = 1
    child_tuning: str = "none"
    reserve_p: float = 0.3
    child_tuning_apply_to: str = "grad"
    adversarial: str = "none"
    epsilon: float = 0.1
    fgm_loss_mode: str = "adv_only"
    gradient_penalty: float | None = None
    gradient_penalty_kind: str = "input"
    ema: float | None = None
    lora_rank: int | None = None
    lora_alpha: float | None = None
    lora_targets: tuple[str, ...] = ("qkv", "attention.output")
    ladder_side: bool = False
    side_hidden: int = 128
    side_layers: int = 4
    lr_multipliers: dict[str, float] = field(default_factory=dict)
    head_lr: float | None = None
    fisher_batches: int | None = None
    eval_batch_size: int = 128
    scratch: ScratchModel = field(default_factory=ScratchModel)
    dev: str | None = None
    test: str | None = None
    split_ratio: float | None = None
    num_labels: int | None = None
    lora_variant: str | None = None
    class_thresholds: bool = False

    def __post_init__(self) -> None:
        if self.num_labels is not None and self.num_labels < 2:
            raise ConfigError(f"--num-labels: expected an integer >= 2, got {self.num_labels}")
        if self.child_tuning not in CHILD_TUNING:
            raise ConfigError(f"--child-tuning: expected one of {', '.join(CHILD_TUNING)}, got {self.child_tuning!r}")
        if self.child_tuning != "none":
            wanted = f"child-tuning-{self.child_tuning.lower()}"
            if self.optimizer not in ("adamw", wanted):
                raise ConfigError(f"--child-tuning {self.child_tuning} uses its own AdamW; it cannot be combined "
                                  f"with --optimizer {self.optimizer}")
            self.optimizer = wanted
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer: expected one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.optimizer == "child-tuning-d" and self.child_tuning == "none":
            self.child_tuning = "D"
        if self.optimizer == "child-tuning-f" and self.child_tuning == "none":
            self.child_tuning = "F"
        if self.adversarial not in ("none", "fgm"):
            raise ConfigError(f"--adversarial: expected 'none' or 'fgm', got {self.adversarial!r}")
        if self.head_lr is not None and not self.head_lr > 0:
            raise ConfigError(f"--head-lr: expected a learning rate > 0, got {self.head_lr}")
        if self.accumulation_steps < 1:
            raise ConfigError(f"--accumulation-steps: expected an integer >= 1, got {self.accumulation_steps}")
        if self.lora_rank is not None and self.ladder_side:
            raise ConfigError("--lora-rank and --ladder-side are exclusive")
        if self.lora_rank is not None and self.lora_rank < 1:
            raise ConfigError(f"--lora-rank: expected an integer >= 1, got {self.lora_rank}")
        check_lora_variant(self.lora_variant, self.lora_rank, self.optimizer, self.ladder_side)
        if self.ema is not None and not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"--ema: expected a decay in [0, 1), got {self.ema}")
        for name in ("train_limit", "eval_limit"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise ConfigError(f"--{name.replace('_', '-')}: expected an integer >= 2, got {value}")
        self.lora_targets = tuple(self.lora_targets)

    @property
    def in_momentum(self) -> bool:
        """Whether accumulation happens inside the optimizer's momentum (``accum-*``)."""
        return self.optimizer.startswith("accum-")


def load_split(cfg: ClassifyConfig, split: str, limit: int | None) -> list[TextExample] | None:
    """The (limited) examples of ``data``'s own ``split``, or ``None`` when the dataset has no such labelled split
    (a single ``data`` file has only a train split)."""
    name = str(cfg.data)
    if name in CLASSIFICATION_DATASETS:
        info = CLASSIFICATION_DATASETS[name]
        if split not in info.splits or not info.splits[split][1]:
            return None
    else:
        if split != "train" and Path(name).expanduser().is_file():
            return None
        try:
            resolve_classification(name, split)
        except ConfigError:
            if split == "train":
                raise
            return None
    examples = load_classification(name, split)
    if split != "train" and any(e.label is None for e in examples):
        return None
    return examples if limit is None else examples[:limit]


@dataclass
class ClassifySplits:
    """Train, dev and test examples (``None``: absent here), the file of each, where each came from in words, and
    the checked class count."""

    train: list[TextExample]
    dev: list[TextExample] | None
    test: list[TextExample] | None
    paths: dict[str, str]
    sources: dict[str, str]
    num_labels: int


def _side_file(flag: str, value: str | None) -> tuple[list[TextExample], str] | None:
    file = check_split_file(flag, value)
    if file is None:
        return None
    examples = load_classification(file, "dev")
    labels_of(examples, f"{flag} {value}")
    return examples, str(file)


def load_classify_splits(cfg: ClassifyConfig, seed: int = 0) -> ClassifySplits:
    """Read train/dev/test of ``cfg.data`` (or ``--dev``/``--test``/``--split-ratio``) and check their labels
    against the classes, before any model is built.

    Raises:
        ConfigError: a single file without ``--dev``/``--split-ratio``, contradicting split options, a missing file,
            unlabelled training data. DataFormatError: a malformed line, or a label outside the classes
            (``file:line``; user data is binary unless ``--num-labels`` says otherwise).
    """
    name = str(cfg.data)
    single = name not in CLASSIFICATION_DATASETS and Path(name).expanduser().is_file()
    check_split_options(name, single, cfg.dev, cfg.test, cfg.split_ratio)
    train_path = str(resolve_classification(name, "train")[0])
    train = everything = load_split(cfg, "train", None)
    labels_of(train, f"{name} train")
    found: dict[str, tuple[list[TextExample], str] | None] = {}
    sources = {"train": train_path}
    if cfg.split_ratio is not None:
        train, dev, test = cut_dev_test(train, cfg.split_ratio, seed)
        found = {"dev": (dev, train_path), "test": (test, train_path)}
        sources = {s: f"{train_path} (--split-ratio {cfg.split_ratio:g} cut, seed {seed})"
                   for s in ("train", "dev", "test")}
    else:
        for split in ("dev", "test"):
            own = load_split(cfg, split, None)
            found[split] = None if own is None else (own, str(resolve_classification(name, split)[0]))
    for flag, value in (("--dev", cfg.dev), ("--test", cfg.test)):
        side = _side_file(flag, value)
        if side is not None:
            found[flag[2:]] = side
    train = train if cfg.train_limit is None else train[:cfg.train_limit]
    limited = {s: None if v is None else (v[0] if cfg.eval_limit is None else v[0][:cfg.eval_limit], v[1])
               for s, v in found.items()}
    registered = CLASSIFICATION_DATASETS[name].num_labels if name in CLASSIFICATION_DATASETS else None
    # whole files, before any cut or limit: a bad label is bad data even where a quick run would not reach it
    files = [(train_path, everything)] + [(v[1], v[0]) for s, v in found.items()
                                          if v is not None and not (cfg.split_ratio is not None and v[1] == train_path)]
    num_labels = check_class_labels(files, cfg.num_labels, registered, name if registered else None)
    for split, v in limited.items():
        if v is not None:
            sources.setdefault(split, v[1])
    paths = {"train": train_path, **{s: v[1] for s, v in limited.items() if v is not None}}
    return ClassifySplits(train, *(None if limited[s] is None else limited[s][0] for s in ("dev", "test")),
                          paths, sources, num_labels)


def build_model(cfg: ClassifyConfig, train: Sequence[TextExample], num_labels: int) -> SequenceClassifier:
    """The classifier of ``cfg`` (pretrained or scratch backbone, LoRA or Ladder Side-Tuning applied)."""
    pair = train[0].text_pair is not None
    texts = [t for e in train for t in (e.text, e.text_pair) if t is not None] if cfg.model == SCRATCH else []
    backbone, tokenizer = build_backbone(cfg.model, texts, cfg.scratch, cfg.max_length)
    ladder = {"side_hidden": cfg.side_hidden, "side_layers": cfg.side_layers} if cfg.ladder_side else None
    model = SequenceClassifier(backbone, num_labels, tokenizer, cfg.pooling, cfg.dropout, cfg.max_length, pair,
                               ladder)
    if cfg.lora_variant is not None:
        model.lora_variant_record = apply_variant(model, cfg.lora_variant, cfg.lora_rank, cfg.lora_targets,
                                                  cfg.lora_alpha)
    elif cfg.lora_rank is not None:
        model = with_lora(model, cfg.lora_rank, list(cfg.lora_targets), cfg.lora_alpha)
    return model


def make_features(model: SequenceClassifier, examples: Sequence[TextExample]) -> list[dict[str, Any]]:
    """Tokenized examples ``{"input_ids", "token_type_ids", "attention_mask", "label"}``."""
    pairs = [e.text_pair for e in examples] if model.pair else None
    feats = model.tokenize([e.text for e in examples], pairs)
    for f, e in zip(feats, examples):
        f["label"] = -1 if e.label is None else int(e.label)
    return feats


def compute_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy of the logits against ``batch["label"]``."""
    logits = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    return nn.functional.cross_entropy(logits.float(), batch["label"])


@torch.no_grad()
def predict_logits(model: SequenceClassifier, features: Sequence[dict[str, Any]], batch_size: int = 128
                   ) -> torch.Tensor:
    """Logits ``[N, C]`` (float32, CPU) in the order of ``features``; batches are length-sorted for speed."""
    device = next(model.parameters()).device
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    out = torch.empty(len(features), model.num_labels)
    was_training = model.training
    model.eval()
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = pad_batch([{k: features[i][k] for k in ("input_ids", "token_type_ids", "attention_mask")}
                           for i in idx], pad_token_id=model.tokenizer.pad_token_id)
        logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                       batch["token_type_ids"].to(device))
        out[torch.tensor(idx)] = logits.float().cpu()
    model.train(was_training)
    return out


def accuracy(model: SequenceClassifier, features: Sequence[dict[str, Any]], batch_size: int = 128) -> float:
    """Accuracy x100 of the argmax prediction."""
    labels = torch.tensor([f["label"] for f in features])
    return float((predict_logits(model, features, batch_size).argmax(-1) == labels).double().mean() * 100)


def build_techniques(cfg: ClassifyConfig, trainer_cfg: TrainerConfig, model: nn.Module
                     ) -> tuple[TrainerConfig, Callable, list[Hook], dict[str, Any]]:
    """The Trainer config (accumulation set), optimizer factory, hooks and the technique record of ``cfg``."""
    k = cfg.accumulation_steps
    trainer_cfg = accumulation_trainer_config(trainer_cfg, k, cfg.in_momentum)
    head = head_lr_multipliers(trainer_cfg.learning_rate, cfg.head_lr, SequenceClassifier.HEAD_PATTERNS)
    multipliers = {**cfg.lr_multipliers, **{p: m for p, m in head.items() if p not in cfg.lr_multipliers}}
    factory = build_optimizer_factory(cfg.optimizer, accumulation_steps=k if cfg.in_momentum else 1,
                                      reserve_p=cfg.reserve_p, child_tuning_apply_to=cfg.child_tuning_apply_to,
                                      lr_multipliers=multipliers, no_decay=no_decay_parameter_names(model))
    if cfg.lora_variant in PROJECTION_VARIANTS:
        factory = projected_factory(model, cfg.lora_variant, cfg.lora_rank, cfg.lora_alpha, multipliers,
                                    no_decay_parameter_names(model))
    hooks: list[Hook] = []
    record: dict[str, Any] = {"optimizer": cfg.optimizer, "accumulation": "none" if k == 1 else
                              ("in-momentum" if cfg.in_momentum else "classic"), "accumulation_steps": k}
    if cfg.lora_variant is not None:
        record["lora_variant"] = getattr(model, "lora_variant_record", None)
    if cfg.child_tuning == "D":
        hooks.append(ChildTuningDHook(cfg.reserve_p, max_batches=cfg.fisher_batches))
    if cfg.adversarial == "fgm":
        hooks.append(FGMHook(cfg.epsilon, cfg.fgm_loss_mode))
    if cfg.gradient_penalty is not None:
        hooks.append(GradientPenaltyHook(cfg.gradient_penalty, cfg.gradient_penalty_kind))
    if cfg.ema is not None:
        # With in-momentum accumulation the Trainer steps every micro-batch but θ moves every k-th one; k EMA
        # updates of the same θ with decay^(1/k) equal one update with ``decay``.
        per_step = cfg.ema ** (1.0 / k) if cfg.in_momentum else cfg.ema
        hooks.append(EMAHook(per_step))
        record["ema_decay_per_trainer_step"] = per_step
    record["hooks"] = [type(h).__name__ for h in hooks]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    record["parameters"] = {"trainable": trainable, "total": sum(p.numel() for p in model.parameters())}
    return trainer_cfg, factory, hooks, record


def train_classify(cfg: ClassifyConfig, trainer_cfg: TrainerConfig, log: Callable[[str], None] = print,
                   extra_hooks: Sequence[Hook] = ()) -> dict[str, Any]:
    """Train on ``cfg.data``'s train split, keep the best dev accuracy, evaluate dev/test with ``best/``.

    ``extra_hooks`` are appended after the technique hooks (e.g. a timing probe of a benchmark).

    Returns: ``{"data", "model", "techniques", "fit", "after": {"dev": {"accuracy"}, "test": ...}, "best_dir"}``,
    also written to ``<output_dir>/results.json``.
    Raises: ConfigError (bad options, no labelled dev split), DataFormatError (a malformed data line).
    """
    # data refusals first (reading is cheap): a refused run leaves nothing on disk, not even a locked empty folder
    splits = load_classify_splits(cfg, trainer_cfg.seed)
    prepare_run_dir(trainer_cfg, {"task": "classify", "classify": cfg}, log=log)  # refusals before any work
    train, dev, test, num_labels = splits.train, splits.dev, splits.test, splits.num_labels
    if dev is None:
        raise ConfigError(f"--data {cfg.data}: a labelled dev split is needed to select the best checkpoint")
    log(f"{cfg.data}: train {len(train)}, dev {len(dev)}, test {len(test) if test is not None else '-'}; "
        f"{num_labels} classes" + (f"; dev and test cut by --split-ratio {cfg.split_ratio:g}, seed {trainer_cfg.seed}"
                                   if cfg.split_ratio is not None else ""))
    seed_everything(trainer_cfg.seed)  # --seed decides the head's (and a scratch encoder's) initialisation
    model = build_model(cfg, train, num_labels)
    trainer_cfg = dataclasses.replace(trainer_cfg, metric_for_best=trainer_cfg.metric_for_best or "accuracy")
    trainer_cfg, factory, hooks, record = build_techniques(cfg, trainer_cfg, model)
    features = make_features(model, train)
    dev_features = make_features(model, dev)
    sampler = LengthBucketBatchSampler([len(f["input_ids"]) for f in features], trainer_cfg.batch_size,
                                       seed=trainer_cfg.seed, drop_last=trainer_cfg.drop_last)

    def batches(epoch: int, _generator: torch.Generator) -> list[list[int]]:
        sampler.set_epoch(epoch)
        return [b.tolist() for b in sampler.global_batches()]

    pad_id = model.tokenizer.pad_token_id
    trainer = Trainer(model, trainer_cfg, features, compute_loss=compute_loss,
                      collate_fn=lambda exs: pad_batch(exs, pad_token_id=pad_id),
                      evaluate=lambda m: {"accuracy": accuracy(m, dev_features, cfg.eval_batch_size)},
                      batch_sampler=batches, optimizer_factory=factory, hooks=[*hooks, *extra_hooks],
                      run_config={"task": "classify", "classify": jsonable(asdict(cfg)), "techniques": record,
                                  "data_splits": {"sources": splits.sources, "num_labels": num_labels}})
    fit = trainer.fit()
    best_dir = Path(trainer_cfg.output_dir) / "best"
    best = load_classifier(best_dir)
    after = {"dev": {"accuracy": accuracy(best, make_features(best, dev), cfg.eval_batch_size)}}
    if test is not None:
        after["test"] = {"accuracy": accuracy(best, make_features(best, test), cfg.eval_batch_size)}
    if cfg.class_thresholds:
        from kexue.tasks.classification_thresholds import threshold_report
        probs = {s: (predict_logits(best, make_features(best, ex), cfg.eval_batch_size).softmax(-1),
                     [int(e.label) for e in ex]) for s, ex in (("dev", dev), ("test", test)) if ex is not None}
        report = threshold_report(*probs["dev"], *probs.get("test", (None, None)), best_dir)
        for split, metrics in report.items():
            after[split].update(metrics)
    log(f"{cfg.data} after training (best dev checkpoint): "
        + "; ".join(f"{split} accuracy {m['accuracy']:.2f}" for split, m in after.items()))
    results = {"data": cfg.data, "model": cfg.model, "techniques": record, "fit": jsonable(fit), "after": after,
               "best_dir": str(best_dir), "num_labels": num_labels,
               "splits": {split: {"source": source, "examples": len(getattr(splits, split) or [])}
                          for split, source in splits.sources.items()}}
    (Path(trainer_cfg.output_dir) / "results.json").write_text(
        json.dumps(jsonable(results), indent=2, allow_nan=False), encoding="utf-8")  # NaN -> null: valid JSON
    return results


def resolve_model_dir(path: str | Path) -> Path:
    """A run folder's ``best/`` (else ``last/``), or the folder itself when it is a saved classifier."""
    path = Path(path)
    for candidate in (path / "best", path / "last", path):
        if (candidate / "kexue_classifier.json").is_file():
            return candidate
    raise ConfigError(f"--model {path}: no saved classifier here (expected best/, last/ or kexue_classifier.json)")


def predict_classify(model_dir: str | Path, lines: Sequence[str], batch_size: int = 64, where: str = "<stdin>",
                     class_thresholds: bool = False) -> list[dict[str, Any]]:
    """Classify text lines (pair models: ``text_a \\t text_b``): ``[{"label": int, "probs": [float]}]``.

    ``class_thresholds``: the label is ``argmax_c p_c·t_c`` with the weights searched on dev at training
    (``--class-thresholds``), else the plain argmax.

    Raises: ConfigError naming the line for an empty line or a wrong number of tab-separated fields, or for
    ``class_thresholds`` without saved thresholds.
    """
    resolved = resolve_model_dir(model_dir)
    weights = None
    if class_thresholds:
        from kexue.tasks.classification_thresholds import load_class_thresholds
        weights = torch.tensor(load_class_thresholds(resolved))
    model = load_classifier(resolved)
    texts, pairs = [], []
    for i, line in enumerate(lines, 1):
        fields = line.split("\t")
        if not line.strip() or len(fields) != (2 if model.pair else 1):
            raise ConfigError(f"{where}:{i}: expected {'text_a<TAB>text_b' if model.pair else 'one text'} per "
                              f"line, found {line[:80]!r}")
        texts.append(fields[0])
        pairs.append(fields[1] if model.pair else None)
    examples = [TextExample(t, p) for t, p in zip(texts, pairs)]
    probs = predict_logits(model, make_features(model, examples), batch_size).softmax(-1)
    labels = (probs.double() * weights).argmax(-1) if weights is not None else probs.argmax(-1)
    return [{"label": int(c), "probs": [round(float(x), 6) for x in p]} for c, p in zip(labels, probs)]

