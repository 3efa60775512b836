"""``kexue eval nsp-zeroshot``: NSP-BERT zero-shot accuracy of a checkpoint on a single-text task
(https://kexue.fm/archives/8671; the unit is :class:`kexue.prompting.NSPZeroShotClassifier`).

Each label's prompt is the ``--prompt`` template with ``{label}`` replaced by the label's name (the dataset's
Chinese names, or ``--labels``); defaults per task in :data:`kexue.tasks.prompt_data.NSP_PRESETS`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from kexue.data.tokenization import Tokenizer
from kexue.errors import ConfigError
from kexue.models import Transformer
from kexue.prompting import NSPZeroShotClassifier
from kexue.tasks.prompt_data import NSP_LABEL_WORDS, NSP_PRESETS, eval_subset, load_prompt_data, task_key


def label_prompts(data: str, prompt: str | None, labels: Sequence[str] | None, names: Sequence[str]) -> list[str]:
    """The prompt sentence of each class.

    Raises:
        ConfigError: no ``--prompt`` and no preset, a prompt without ``{label}``, or ``--labels`` of the wrong count.
    """
    key = task_key(data)
    template = prompt or NSP_PRESETS.get(key)
    if template is None:
        raise ConfigError(f"--prompt: no default label prompt for --data {data}; give one with {{label}}, e.g. "
                          "'这是一篇{label}新闻'")
    if "{label}" not in template:
        raise ConfigError(f"--prompt {template!r}: expected a {{label}} slot")
    words = list(labels) if labels is not None else NSP_LABEL_WORDS.get(key, list(names))
    if len(words) != len(names):
        raise ConfigError(f"--labels: expected {len(names)} names (one per class), got {len(words)}")
    return [template.replace("{label}", w) for w in words]


def evaluate_nsp_zeroshot(model: str, data: str, *, fold: str = "0", split: str = "test", prompt: str | None = None,
                          labels: Sequence[str] | None = None, position: str = "prefix", max_length: int = 128,
                          eval_limit: int | None = None, batch_size: int = 32) -> dict[str, Any]:
    """Zero-shot NSP accuracy ×100 of ``model`` on ``data``'s ``split`` (``dev`` of the fold, or ``test``).

    Raises:
        ConfigError: a pair or candidate task, bad prompts / labels / position, a checkpoint without NSP head
            (naming ``--model``), a non-positive ``--eval-limit``.
    """
    if eval_limit is not None and eval_limit < 1:
        raise ConfigError(f"--eval-limit: expected a positive integer, got {eval_limit}")
    if position not in ("prefix", "suffix"):
        raise ConfigError(f"--position: expected prefix or suffix, got {position!r}")
    splits = load_prompt_data(data, fold)
    rows = eval_subset(splits.dev if split == "dev" else splits.test, eval_limit)
    if splits.candidates or any(r.text_b is not None or r.spans is not None for r in rows):
        raise ConfigError(f"--data {data}: nsp-zeroshot scores single-text classification tasks (not pairs, spans "
                          "or candidates)")
    prompts = label_prompts(data, prompt, labels, splits.label_names)
    tokenizer = Tokenizer.from_pretrained(model)
    backbone = Transformer.from_pretrained(model).eval()
    if backbone.nsp_head is None or backbone.pooler is None:
        raise ConfigError(f"--model {model}: the checkpoint has no trained next-sentence head "
                          "(cls.seq_relationship.* and pooler.dense.*); NSP-BERT needs a model pretrained with NSP")
    clf = NSPZeroShotClassifier(backbone, tokenizer, prompts, position=position, max_length=max_length,
                                batch_size=batch_size)
    start = time.perf_counter()
    pred = clf.predict([r.text_a for r in rows])
    accuracy = float((pred == torch.tensor([r.label for r in rows])).double().mean()) * 100
    return {"model": model, "data": data, "fold": fold, "split": split, "position": position, "prompts": prompts,
            "examples": len(rows), "accuracy": accuracy, "seconds": time.perf_counter() - start}
