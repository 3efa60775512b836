"""NSP-BERT: zero-shot classification with the next-sentence-prediction head.

"曾被嫌弃的预训练任务NSP,做出了优秀的Zero Shot效果", https://kexue.fm/archives/8671 (Sun et al., "NSP-BERT",
arXiv 2109.03564). Each label is written as a prompt sentence ("这是一篇{体育}新闻"); every (prompt, text) pair
is scored by the NSP head and the label whose pair is most likely a continuation wins:

* prefix mode: ``p_y(x) = softmax(W_nsp · pooler([CLS] prompt(y) [SEP] x [SEP]))[IsNext]``;
* suffix mode: the two segments swapped, ``[CLS] x [SEP] prompt(y) [SEP]``.

Index 0 is IsNext, as in Google's and Hugging Face's BERT. The prompt is never truncated; the text is. Token
type ids are 0 on the first segment (with ``[CLS]`` and its ``[SEP]``) and 1 on the second.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from kexue.data.collate import pad_batch
from kexue.errors import ConfigError

POSITIONS = ("prefix", "suffix")
IS_NEXT = 0
"""The IsNext column of BERT's NSP logits (Google / Hugging Face convention)."""


def nsp_logits(model: Any, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tensor:
    """Next-sentence logits ``[B, 2]`` of kexue's Transformer (``nsp_logits``), a transformers
    ``BertForNextSentencePrediction`` (``logits``) or ``BertForPreTraining`` (``seq_relationship_logits``).

    Raises:
        ConfigError: the model has no NSP head (a checkpoint without trained ``cls.seq_relationship`` weights,
            such as RoBERTa-style releases).
    """
    out = model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
    for name in ("nsp_logits", "seq_relationship_logits", "logits"):
        value = out if isinstance(out, Tensor) else getattr(out, name, None)
        if value is not None and value.dim() == 2 and value.shape[-1] == 2:
            return value
    raise ConfigError("the model has no next-sentence head: NSP-BERT needs a checkpoint pretrained with NSP "
                      "(trained cls.seq_relationship.* and pooler weights); RoBERTa-style releases have none")


class NSPZeroShotClassifier:
    """Score every (text, label prompt) pair with the NSP head.

    Args:
        model: kexue's Transformer with pooler + NSP head, or a transformers model with an NSP output.
        tokenizer: a :class:`kexue.data.Tokenizer`.
        label_prompts: one prompt sentence per label (the column order of :meth:`scores`).
        position: ``"prefix"`` (prompt first, the authors' default) or ``"suffix"``.
        max_length: tokens per pair (``--max-length``); the text is truncated, never the prompt.
        batch_size: pairs per forward pass.
    Raises:
        ConfigError: no prompts, an unknown ``position`` (``--position``), or a prompt that leaves no room for a
            text token within ``max_length``.
    """

    def __init__(self, model: Any, tokenizer, label_prompts: Sequence[str], position: str = "prefix",
                 max_length: int = 128, batch_size: int = 32) -> None:
        if position not in POSITIONS:
            raise ConfigError(f"--position: expected prefix or suffix, got {position!r}")
        if not label_prompts:
            raise ConfigError("--prompts: expected one prompt sentence per label")
        self.model, self.tokenizer = model, tokenizer
        self.label_prompts = list(label_prompts)
        self.position, self.max_length, self.batch_size = position, max_length, batch_size
        for prompt in self.label_prompts:
            n = len(tokenizer.backend(prompt, add_special_tokens=False)["input_ids"])
            if n + 4 > max_length:
                raise ConfigError(f"--max-length {max_length}: the prompt {prompt!r} takes {n} tokens, leaving no "
                                  "room for the text")

    def features(self, texts: Sequence[str]) -> list[dict[str, list[int]]]:
        """Encoded pairs in row-major order: text 0 with every prompt, then text 1 ..."""
        firsts, seconds = [], []
        for text in texts:
            for prompt in self.label_prompts:
                a, b = (prompt, text) if self.position == "prefix" else (text, prompt)
                firsts.append(a)
                seconds.append(b)
        enc = self.tokenizer.backend(firsts, seconds, max_length=self.max_length, padding=False,
                                     truncation="only_second" if self.position == "prefix" else "only_first",
                                     return_token_type_ids=True, return_attention_mask=False)
        return [{"input_ids": i, "token_type_ids": t} for i, t in zip(enc["input_ids"], enc["token_type_ids"])]

    def scores(self, texts: Sequence[str]) -> Tensor:
        """``log p(IsNext)`` of every pair, ``[N, C]`` float32 (no gradients, the model's current mode)."""
        if not texts:
            return torch.empty(0, len(self.label_prompts))
        feats = self.features(texts)
        out = []
        try:
            device = next(self.model.parameters()).device
        except (AttributeError, StopIteration):
            device = torch.device("cpu")
        with torch.no_grad():
            for start in range(0, len(feats), self.batch_size):
                batch = pad_batch(feats[start:start + self.batch_size], pad_token_id=self.tokenizer.pad_token_id)
                logits = nsp_logits(self.model, batch["input_ids"].to(device), batch["attention_mask"].to(device),
                                    batch["token_type_ids"].to(device))
                out.append(logits.float().log_softmax(-1)[:, IS_NEXT].cpu())
        return torch.cat(out).view(len(texts), len(self.label_prompts))

    def predict(self, texts: Sequence[str]) -> Tensor:
        """Predicted label indices ``[N]`` long."""
        return self.scores(texts).argmax(-1)
