"""A sentence encoder: a Transformer backbone followed by a pooling rule.

Source: the pooling ids P1–P4 of the CN-STS tables in "CoSENT(一)", https://kexue.fm/archives/8847
and "无监督语义相似度哪家强?", https://kexue.fm/archives/8321.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kexue.data.tokenization import Tokenizer
from kexue.errors import ConfigError
from kexue.hub import resolve_model_path
from kexue.models.auto import load_encoder, position_limit
from kexue.models.config import TransformerConfig
from kexue.embeddings.whitening import Whitening
from kexue.nn.pooling import POOLING_MODES, pool

ENCODER_CONFIG = "kexue_encoder.json"


class SentenceEncoder(nn.Module):
    """Backbone + pooling, mapping token ids to one vector per sentence.

    Args:
        backbone: a module whose forward takes ``input_ids``, ``attention_mask``, ``token_type_ids`` and
            ``output_hidden_states`` and returns an object with ``last_hidden_state`` ``[B, L, H]``,
            ``hidden_states`` and ``pooler_output`` (kexue's :class:`~kexue.models.Transformer`, or the
            ``transformers.AutoModel`` wrapper from :func:`kexue.models.auto.load_encoder`).
        tokenizer: the :class:`~kexue.data.tokenization.Tokenizer` matching the backbone's vocabulary.
        pooling: one of ``cls``, ``pooler``, ``last-avg``, ``first-last-avg`` (spec §0, P1–P4).
        max_length: tokens per sentence, special tokens included.

    Raises:
        ConfigError: unknown pooling mode, ``max_length`` below 2 or above the backbone's position limit
            (:func:`kexue.models.auto.position_limit`).
    """

    def __init__(self, backbone: nn.Module, tokenizer: Tokenizer, pooling: str = "last-avg",
                 max_length: int = 64) -> None:
        super().__init__()
        if pooling not in POOLING_MODES:
            raise ConfigError(f"--pooling: expected one of {', '.join(POOLING_MODES)}, got {pooling!r}")
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 2:
            raise ConfigError(f"--max-length: expected an integer >= 2, got {max_length!r}")
        limit = _position_limit(backbone)
        if limit is not None and max_length > limit:
            raise ConfigError(f"--max-length {max_length}: the model has {limit} positions "
                              f"(max_position_embeddings); use --max-length {limit} or less")
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_length = max_length
        #: optional BERT-whitening applied by :meth:`encode` (saved with the model; see kexue.embeddings.whitening)
        self.whitening: Whitening | None = None

    @property
    def hidden_size(self) -> int:
        """Width ``H`` of the sentence vectors."""
        return int(self.backbone.config.hidden_size)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, pooling: str | None = None,
                        max_length: int | None = None) -> "SentenceEncoder":
        """Load backbone and tokenizer from a checkpoint folder (or the alias ``minilm``).

        A folder written by :meth:`save_pretrained` remembers its pooling and max length; explicit
        arguments override them. Defaults otherwise: ``last-avg``, 64. A ``kexue train`` run folder means its
        ``best/``. Returned in eval mode (as transformers' ``from_pretrained``); call ``.train()`` before
        fine-tuning.

        Raises:
            ConfigError: unknown alias or folder, unsupported model type or option, bad pooling / max length.
            CheckpointError: weights that do not load exactly (see :func:`kexue.models.auto.load_encoder`).
        """
        path = resolve_model_path(name_or_path)  # a run folder means its best/
        backbone, _kind = load_encoder(path)
        tokenizer = Tokenizer.from_pretrained(path)
        saved: dict = {}
        if (path / ENCODER_CONFIG).is_file():
            saved = json.loads((path / ENCODER_CONFIG).read_text(encoding="utf-8"))
        encoder = cls(backbone, tokenizer, pooling or saved.get("pooling", "last-avg"),
                      max_length or saved.get("max_length", 64))
        encoder.whitening = Whitening.load(path)
        return encoder.eval()

    def save_pretrained(self, path: str | Path) -> None:
        """Write backbone (Hugging Face layout), tokenizer and the pooling config into ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        (path / ENCODER_CONFIG).write_text(
            json.dumps({"pooling": self.pooling, "max_length": self.max_length}, indent=2), encoding="utf-8")
        if self.whitening is not None:
            self.whitening.save(path)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Sentence vectors ``[B, H]`` (float, not normalized) from ids ``[B, L]`` and mask ``[B, L]``."""
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            output_hidden_states=self.pooling == "first-last-avg")
        return pool(out, attention_mask, self.pooling, pooler_dense=self._pooler_dense())

    def _pooler_dense(self) -> nn.Module | None:
        """The pretrained pooler's Dense for ``pooler`` pooling: P2 is Dense without tanh (spec §0)."""
        if self.pooling != "pooler":
            return None
        backbone = getattr(self.backbone, "model", self.backbone)  # HFEncoder wraps a transformers model
        pooler = getattr(backbone, "pooler", None)
        return getattr(pooler, "dense", None)

    def tokenize(self, texts: Sequence[str]) -> list[dict[str, list[int]]]:
        """Token ids of each text (no padding), truncated to ``max_length``."""
        enc = self.tokenizer(list(texts), max_length=self.max_length, truncation=True)
        return [{k: enc[k][i] for k in ("input_ids", "token_type_ids", "attention_mask")} for i in range(len(texts))]

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 64, normalize: bool = False) -> np.ndarray:
        """Encode texts to a float32 array ``[N, H]`` (row ``i`` = ``texts[i]``).

        Runs in the model's dtype: ``encoder.to(torch.bfloat16)`` casts the weights once and every batch then
        runs in bf16 (the fused kernels of :mod:`kexue.nn.fused`); the vectors come back as float32. Texts
        are sorted by token count so that each batch pads to little more than its own length, and the
        original order is restored. Batches whose ``token_type_ids`` are all 0 pass ``None`` (same result,
        no segment lookup); batches without padding pass no mask to the attention. A :attr:`whitening` is
        applied (in float64) before ``normalize``; the width is then its ``k``.

        Raises:
            ConfigError: ``batch_size`` is not a positive integer (``--batch-size``).
        """
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(f"--batch-size: expected an integer >= 1, got {batch_size!r}")
        was_training = self.training
        self.eval()
        try:
            if self.whitening is None:
                return self._encode_sorted(texts, batch_size, normalize)
            raw = self._encode_sorted(texts, batch_size, False)
            return self.whitening.transform(raw, normalize=normalize).astype(np.float32)
        finally:
            self.train(was_training)

    def _encode_sorted(self, texts: Sequence[str], batch_size: int, normalize: bool) -> np.ndarray:
        """:meth:`encode` without the checks: length-sorted numpy-padded batches, rows put back in order."""
        if len(texts) == 0:
            return np.zeros((0, self.hidden_size), dtype=np.float32)
        enc = self.tokenizer(list(texts), max_length=self.max_length, truncation=True)
        ids, types = enc["input_ids"], enc["token_type_ids"]
        lengths = np.fromiter((len(r) for r in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(lengths, kind="stable")
        device = next(self.parameters()).device
        pad = self.tokenizer.pad_token_id
        out = np.zeros((len(texts), self.hidden_size), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = int(lengths[idx].max())
            batch_ids = np.full((len(idx), width), pad, dtype=np.int64)
            batch_types = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                batch_ids[row, :lengths[i]] = ids[i]
                batch_types[row, :lengths[i]] = types[i]
            mask = torch.from_numpy(np.arange(width)[None, :] < lengths[idx][:, None]).long().to(device)
            token_types = torch.from_numpy(batch_types).to(device) if batch_types.any() else None
            vecs = self(torch.from_numpy(batch_ids).to(device), mask, token_types).float()
            if normalize:
                vecs = torch.nn.functional.normalize(vecs, dim=-1)
            out[idx] = vecs.cpu().numpy()
        return out


def _position_limit(backbone: nn.Module) -> int | None:
    """The most tokens per sentence the backbone takes (``None``: no limit known, e.g. rotary positions)."""
    config = getattr(backbone, "config", None)
    if isinstance(config, TransformerConfig):
        return config.max_position_embeddings if config.family == "bert" else None
    to_dict = getattr(config, "to_dict", None)
    return position_limit(to_dict()) if callable(to_dict) else None
