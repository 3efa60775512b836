"""PET: cloze-style zero-, few- and semi-supervised classification with a masked LM.

"必须要GPT3吗?不,BERT的MLM模型也能小样本学习", https://kexue.fm/archives/7764 (Schick & Schütze,
arXiv 2001.07676 / 2009.07118). An example is rewritten by a :class:`~kexue.prompting.ClozePattern`; the MLM's
log-probabilities of each label word at the mask slots (:class:`~kexue.prompting.Verbalizer`) are the label
scores, ``s_y(x) = Σ_k log p(v_k(y) | T(x))[m_k]``, and the prediction is ``argmax_y s_y``.

Training (few-shot): token cross-entropy on the positions that carry a target, averaged over those positions:
the label word at the mask slots of a labelled example, plus BERT's random masking of 15% of the other tokens
(80% ``[MASK]`` / 10% kept / 10% random, :func:`kexue.data.masking.whole_word_mask` with one "word" per token)
with the original token as target. Unlabelled examples (semi-supervised PET) get no pattern, only the random
masking, so they add an MLM loss and no pattern loss. Positions without a target hold ``-100`` (``IGNORE_INDEX``;
the article's code writes 0) and carry no loss. A label with several words trains on its first word.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from kexue.data.collate import pad_batch
from kexue.data.masking import IGNORE_INDEX, MaskingConfig, whole_word_mask
from kexue.errors import ConfigError
from kexue.prompting.pattern import ClozePattern, plain_encoding
from kexue.prompting.verbalizer import LabelWord, Verbalizer

Example = str | Sequence[str] | Mapping[str, str]


def mlm_logits(model: Any, input_ids: Tensor, attention_mask: Tensor | None = None,
               token_type_ids: Tensor | None = None) -> Tensor:
    """Masked-LM logits ``[B, L, vocab]`` of ``model``: kexue's Transformer (``mlm_logits``), a transformers
    ``*ForMaskedLM`` (``logits``) / ``*ForPreTraining`` (``prediction_logits``), or any callable returning a tensor.

    Raises:
        ConfigError: the model has no masked-LM head (e.g. a checkpoint without ``cls.predictions.*``).
    """
    out = model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
    if isinstance(out, Tensor):
        return out
    for name in ("mlm_logits", "prediction_logits", "logits"):
        value = getattr(out, name, None)
        if value is not None:
            return value
    raise ConfigError("the model has no masked-LM head (a checkpoint with trained cls.predictions.* weights is "
                      "needed for PET / P-tuning)")


def _device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def cloze_word_scores(model: Any, tokenizer, pattern: ClozePattern, words: Sequence[Any],
                      examples: Sequence[Example], *, max_length: int = 128, batch_size: int = 32,
                      prompt_ids: Sequence[int] | None = None, per_example: bool = False) -> Tensor:
    """Joint log-probability of every label word for every example, ``[N, W]`` float32.

    Words are grouped by their length signature; each group is scored on its own encoding of the examples with
    mask slots of exactly those lengths (the per-length rule of :mod:`kexue.prompting.verbalizer`). Runs under
    ``torch.no_grad`` in the model's current mode (call ``model.eval()`` first).

    Args:
        words: :class:`LabelWord` list shared by all examples, or with ``per_example=True`` one list per example
            (all of the same length ``W``; e.g. ChID's seven candidate idioms).
    Raises:
        ConfigError: a word that cannot fit with the pattern into ``max_length``; a model without an MLM head;
            per-example lists of different lengths.
    """
    lists = list(words) if per_example else [list(words)] * len(examples)
    if len(lists) != len(examples) or len({len(ws) for ws in lists}) > 1:
        raise ConfigError("per-example label words: expected one list of the same length per example")
    device = _device(model)
    out = torch.empty(len(examples), len(lists[0]) if lists else 0)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, ws in enumerate(lists):
        for lengths in dict.fromkeys(w.lengths for w in ws):
            groups.setdefault(lengths, []).append(i)
    with torch.no_grad():
        for lengths, rows in groups.items():
            for start in range(0, len(rows), batch_size):
                chunk = rows[start:start + batch_size]
                encoded = [pattern.encode(tokenizer, examples[i], lengths, max_length, prompt_ids) for i in chunk]
                batch = pad_batch([{"input_ids": e.input_ids} for e in encoded], pad_token_id=tokenizer.pad_token_id)
                logits = mlm_logits(model, batch["input_ids"].to(device), batch["attention_mask"].to(device))
                positions = torch.tensor([[p for slot in e.mask_positions for p in slot] for e in encoded])
                index = torch.arange(len(chunk))[:, None].expand_as(positions)
                logp = logits[index.to(device), positions.to(device)].float().log_softmax(-1).cpu()  # [b, K, V]
                k = torch.arange(positions.shape[1])
                for r, i in enumerate(chunk):
                    cols = [j for j, w in enumerate(lists[i]) if w.lengths == lengths]
                    ids = torch.tensor([[t for part in lists[i][j].ids for t in part] for j in cols])  # [m, K]
                    out[i, cols] = logp[r][k[None, :], ids].sum(-1)
    return out


def random_token_mask(input_ids: Tensor, candidates: Tensor, *, mask_token_id: int, vocab_size: int,
                      generator: torch.Generator, probability: float = 0.15, special_ids: Sequence[int] = ()
                      ) -> tuple[Tensor, Tensor]:
    """BERT's masking over the ``candidates`` (``[B, L]`` bool) tokens: about ``probability`` of them per row are
    chosen (``floor(p·n + u)``), 80% ``[MASK]`` / 10% kept / 10% random id. Returns ``(masked_ids, labels)`` with
    the original id at chosen positions and ``-100`` elsewhere (:func:`kexue.data.masking.whole_word_mask`, one word
    per token)."""
    word_ids = torch.where(candidates, candidates.long().cumsum(1) - 1, torch.full_like(input_ids, -1))
    return whole_word_mask(input_ids, word_ids, mask_token_id=mask_token_id, vocab_size=vocab_size,
                           generator=generator, config=MaskingConfig(probability, 0.8, 0.1, "token"),
                           special_ids=special_ids)


def mlm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean token cross-entropy over the positions whose label is not ``-100`` (``[B, L, V]``, ``[B, L]`` -> scalar);
    0 (with a gradient path) when no position has a target."""
    if not bool((labels != IGNORE_INDEX).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX)


class PETClassifier:
    """A pattern + verbalizer over a masked LM: scores, predictions and training batches.

    Args:
        model: kexue's Transformer with an MLM head, a transformers masked LM, or a callable returning
            ``[B, L, V]`` logits (see :func:`mlm_logits`).
        tokenizer: a :class:`kexue.data.Tokenizer`.
        pattern, verbalizer: see :mod:`kexue.prompting.pattern` / :mod:`kexue.prompting.verbalizer`.
        max_length: tokens per encoded example (``--max-length``).
        batch_size: examples per forward pass when scoring.
        prompt_ids: ids of the pattern's ``{p}`` slots (P-tuning), else ``None``.
    Raises:
        ConfigError: a verbalizer word outside the vocabulary or with the wrong number of parts.
    """

    def __init__(self, model: Any, tokenizer, pattern: ClozePattern, verbalizer: Verbalizer, *,
                 max_length: int = 128, batch_size: int = 32, prompt_ids: Sequence[int] | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.pattern = pattern
        self.verbalizer = verbalizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.prompt_ids = list(prompt_ids) if prompt_ids is not None else None
        self.words = verbalizer.tokenize(tokenizer, pattern.num_masks)
        self.special_ids = sorted({tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id,
                                   tokenizer.mask_token_id, *(self.prompt_ids or [])})

    def scores(self, examples: Sequence[Example]) -> Tensor:
        """Label scores ``[N, C]`` (log-scale; columns in verbalizer order), no gradients."""
        word_scores = cloze_word_scores(self.model, self.tokenizer, self.pattern, self.words, examples,
                                        max_length=self.max_length, batch_size=self.batch_size,
                                        prompt_ids=self.prompt_ids)
        return self.verbalizer.combine_scores(word_scores, self.words)

    def predict(self, examples: Sequence[Example]) -> Tensor:
        """Predicted label indices ``[N]`` long (``argmax`` of :meth:`scores`)."""
        return self.scores(examples).argmax(-1)

    def training_features(self, example: Example, label_index: int | None = None,
                          words: Sequence[LabelWord] | None = None) -> dict[str, list[int]]:
        """One training example: ``input_ids``, ``labels`` (the label word's ids at the mask slots, ``-100``
        elsewhere) and ``protected`` (1 where random masking must not touch: specials, mask slots, prompts).
        ``label_index=None``: an unlabelled text, no pattern, nothing protected but the specials. ``words``: this
        example's own label words (e.g. ChID's candidates) instead of the verbalizer's."""
        if label_index is None:
            ids = plain_encoding(self.tokenizer, example, self.max_length)
            return {"input_ids": ids, "labels": [IGNORE_INDEX] * len(ids), "protected": [0] * len(ids)}
        words = self.words if words is None else words
        word = next((w for w in words if w.label_index == label_index), None)
        if word is None:
            raise ConfigError(f"label index {label_index} has no label word ({len(words)} words given)")
        enc = self.pattern.encode(self.tokenizer, example, word.lengths, self.max_length, self.prompt_ids)
        labels = [IGNORE_INDEX] * len(enc.input_ids)
        protected = [0] * len(enc.input_ids)
        for slot, part in zip(enc.mask_positions, word.ids):
            for pos, tok in zip(slot, part):
                labels[pos] = tok
                protected[pos] = 1
        for pos in enc.prompt_positions:
            protected[pos] = 1
        return {"input_ids": enc.input_ids, "labels": labels, "protected": protected}

    def collate(self, features: Sequence[Mapping[str, list[int]]]) -> dict[str, Tensor]:
        """Pad training features (``labels`` pad with -100, ``protected`` with 0)."""
        return pad_batch(list(features), pad_token_id=self.tokenizer.pad_token_id)

    def mask_batch(self, batch: Mapping[str, Tensor], generator: torch.Generator, probability: float = 0.15
                   ) -> tuple[Tensor, Tensor]:
        """``(input_ids, labels)`` of a collated batch after random masking of the unprotected real tokens;
        labels keep the label-word targets and add the masked tokens' originals."""
        ids, labels = batch["input_ids"], batch["labels"]
        candidates = (batch["attention_mask"] == 1) & (batch["protected"] == 0)
        if probability == 0:
            return ids, labels
        masked, mlm_labels = random_token_mask(ids, candidates, mask_token_id=self.tokenizer.mask_token_id,
                                               vocab_size=self.tokenizer.vocab_size, generator=generator,
                                               probability=probability, special_ids=self.special_ids)
        return masked, torch.where(labels != IGNORE_INDEX, labels, mlm_labels)

    def loss(self, model: Any, batch: Mapping[str, Tensor], probability: float = 0.15,
             generator: torch.Generator | None = None) -> Tensor:
        """Training loss of a collated batch (:func:`mlm_loss` after :meth:`mask_batch`). Without ``generator`` the
        masking draws a seed from torch's global RNG (restored exactly on ``--resume`` by the Trainer)."""
        if generator is None:
            generator = torch.Generator().manual_seed(int(torch.randint(2 ** 62, (1,)).item()))
        ids, labels = self.mask_batch(batch, generator, probability)
        logits = mlm_logits(model, ids, batch["attention_mask"])
        return mlm_loss(logits, labels)
