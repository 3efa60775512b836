"""The classification model of the classification recipe: an encoder (optionally with LoRA adapters, or frozen
under a Ladder Side-Tuning side network), ``[CLS]`` or mean pooling, dropout and a linear head.

A saved model folder holds the backbone in the Hugging Face layout (LoRA merged into the weights), the tokenizer,
``kexue_classifier.json`` (sizes and options) and ``classifier_head.safetensors`` (the head, and the side network).

Sources: LoRA https://kexue.fm/archives/9590 (through peft); Ladder Side-Tuning https://kexue.fm/archives/9138.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from kexue.adapters import LadderSideNetwork, LoRALinear, apply_lora, merge_lora, merge_lora_variants
from kexue.data.tokenization import Tokenizer
from kexue.errors import CheckpointError, ConfigError
from kexue.models.auto import load_encoder
from kexue.nn.pooling import masked_mean

CLASSIFIER_CONFIG = "kexue_classifier.json"
HEAD_WEIGHTS = "classifier_head.safetensors"
POOLINGS = ("cls", "mean")


class SequenceClassifier(nn.Module):
    """Encoder + pooling + ``Linear(hidden, num_labels)`` over single texts or text pairs.

    Args:
        backbone: a module called as ``backbone(input_ids=, attention_mask=, token_type_ids=)`` returning an object
            with ``last_hidden_state`` ``[B, L, H]`` (kexue's Transformer, :class:`kexue.models.auto.HFEncoder`, or
            a peft model over either).
        num_labels: classes C ≥ 2.
        tokenizer: the backbone's :class:`Tokenizer` (saved with the model).
        pooling: ``"cls"`` (first token) or ``"mean"`` (mean over real tokens).
        dropout: dropout before the head.
        max_length: tokens per example (pairs: both texts together), kept for prediction.
        pair: whether examples are text pairs (``[CLS] a [SEP] b [SEP]``).
        ladder: keyword arguments of :class:`LadderSideNetwork` to freeze the backbone and classify from a side
            network instead (``None``: classify from the backbone).

    Forward: ``input_ids``, ``attention_mask`` ``[B, L]`` (1 = keep), optional ``token_type_ids`` → logits ``[B, C]``
    (float). Raises ConfigError for bad sizes or options.
    """

    #: name patterns (:func:`kexue.optim.name_matches`) of the task head's parameters, which ``--head-lr`` targets
    HEAD_PATTERNS = ("classifier",)

    def __init__(self, backbone: nn.Module, num_labels: int, tokenizer: Tokenizer, pooling: str = "cls",
                 dropout: float = 0.1, max_length: int = 128, pair: bool = False,
                 ladder: dict[str, Any] | None = None) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"--pooling: expected one of {', '.join(POOLINGS)}, got {pooling!r}")
        if num_labels < 2:
            raise ConfigError(f"num_labels: expected >= 2 classes, got {num_labels}")
        self.tokenizer, self.pooling, self.max_length, self.pair = tokenizer, pooling, max_length, pair
        self.num_labels, self.dropout_p, self.ladder_options = num_labels, dropout, ladder
        if ladder is not None:
            self.side = LadderSideNetwork(backbone, **ladder)
            width = self.side.side_hidden
        else:
            self.encoder = backbone
            width = int(backbone.config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, num_labels)

    @property
    def backbone(self) -> nn.Module:
        """The encoder (inside the side network for Ladder Side-Tuning)."""
        return self.side.backbone if self.ladder_options is not None else self.encoder

    def get_input_embeddings(self) -> nn.Embedding:
        """The backbone's word-embedding table (for FGM and the gradient penalty)."""
        return self.backbone.get_input_embeddings()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, C]`` for a padded batch."""
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        if self.ladder_options is not None:
            hidden = self.side(input_ids=input_ids, attention_mask=attention_mask, **extra)
        else:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        pooled = hidden[:, 0] if self.pooling == "cls" else masked_mean(hidden, attention_mask)
        return self.classifier(self.dropout(pooled))

    def tokenize(self, texts: list[str], pairs: list[str] | None = None) -> list[dict[str, list[int]]]:
        """Unpadded token ids per example (``input_ids``, ``token_type_ids``, ``attention_mask``)."""
        enc = self.tokenizer(texts, pairs, max_length=self.max_length, truncation=True)
        return [{k: enc[k][i] for k in ("input_ids", "token_type_ids", "attention_mask")} for i in range(len(texts))]

    def save_pretrained(self, path: str | Path) -> None:
        """Write backbone (LoRA merged, HF layout), tokenizer, ``kexue_classifier.json`` and the head weights."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        backbone = self.backbone
        if hasattr(backbone, "peft_config"):
            backbone = merge_lora(copy.deepcopy(backbone))
        if any(isinstance(m, LoRALinear) for m in backbone.modules()):   # --lora-variant module forms
            backbone = merge_lora_variants(copy.deepcopy(backbone))
        saver = backbone if hasattr(backbone, "save_pretrained") else getattr(backbone, "model", None)
        if saver is None or not hasattr(saver, "save_pretrained"):
            raise ConfigError(f"cannot save a backbone of type {type(backbone).__name__}")
        saver.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        head = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()
                if not k.startswith(("encoder.", "side.backbone."))}
        save_file(head, str(path / HEAD_WEIGHTS))
        config = {"num_labels": self.num_labels, "pooling": self.pooling, "dropout": self.dropout_p,
                  "max_length": self.max_length, "pair": self.pair, "ladder": self.ladder_options}
        (path / CLASSIFIER_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def with_lora(model: SequenceClassifier, rank: int, targets: list[str], alpha: float | None = None,
              dropout: float = 0.0) -> SequenceClassifier:
    """Wrap the classifier's encoder with LoRA adapters (:func:`kexue.adapters.apply_lora`); only the adapters and
    the head stay trainable. Raises ConfigError for Ladder Side-Tuning models or unknown targets."""
    if model.ladder_options is not None:
        raise ConfigError("--lora-rank and --ladder-side are exclusive: Ladder Side-Tuning freezes the backbone")
    model.encoder = apply_lora(model.encoder, targets, r=rank, alpha=alpha, dropout=dropout)
    return model


def load_classifier(path: str | Path) -> SequenceClassifier:
    """Load a folder written by :meth:`SequenceClassifier.save_pretrained`.

    Raises: CheckpointError if the folder lacks the classifier files or the head weights do not fit.
    """
    path = Path(path)
    for name in (CLASSIFIER_CONFIG, HEAD_WEIGHTS):
        if not (path / name).is_file():
            raise CheckpointError(f"{path} is not a saved classifier (no {name})", missing=[name])
    config = json.loads((path / CLASSIFIER_CONFIG).read_text(encoding="utf-8"))
    backbone, _kind = load_encoder(path)
    model = SequenceClassifier(backbone, config["num_labels"], Tokenizer.from_pretrained(path), config["pooling"],
                               config["dropout"], config["max_length"], config["pair"], config["ladder"])
    head = load_file(str(path / HEAD_WEIGHTS))
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(("encoder.", "side.backbone."))}
    missing, unexpected = set(own) - set(head), set(head) - set(own)
    mismatched = {k: (tuple(own[k].shape), tuple(v.shape)) for k, v in head.items()
                  if k in own and own[k].shape != v.shape}
    if missing or unexpected or mismatched:
        raise CheckpointError(f"{path / HEAD_WEIGHTS} does not fit the classifier", missing=missing,
                              unexpected=unexpected, mismatched=mismatched)
    model.load_state_dict(head, strict=False)
    return model.eval()
