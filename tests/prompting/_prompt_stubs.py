"""Helpers of the prompting tests: a character tokenizer over real sentiment texts and stub masked LMs whose
probabilities are known."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from kexue.data.tokenization import Tokenizer

PATTERN_CHARS = "下面报导一则新闻。很不满意好差体育财经国际娱乐这是篇的？，"


def sentiment_texts(kexue_data: Path, n: int = 24) -> tuple[list[str], list[int]]:
    """The first ``n`` lines of the real sentiment_zh training file (texts cut to 40 characters) and labels."""
    texts, labels = [], []
    with open(kexue_data / "sentiment_zh" / "sentiment.train.data", encoding="utf-8") as f:
        for line in f:
            text, label = line.rstrip("\n").split("\t")
            texts.append(text[:40])
            labels.append(int(label))
            if len(texts) == n:
                break
    return texts, labels


def char_tokenizer(texts: list[str]) -> Tokenizer:
    """A character vocabulary over ``texts`` and the characters of the test patterns and label words."""
    return Tokenizer.train_new(list(texts) + [PATTERN_CHARS], kind="char", vocab_size=4000)


class InputDependentMLM(torch.nn.Module):
    """Deterministic logits that depend on position, vocabulary id and the row's input ids:
    ``logits[b, l, v] = 3 sin(1.3 v + 0.7 l + 0.01 Σ ids[b] + 0.2 ids[b, l])``."""

    def __init__(self, vocab_size: int, bump: dict[int, float] | None = None) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.bump = bump or {}

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        b, length = input_ids.shape
        v = torch.arange(self.vocab_size, dtype=torch.float64)
        pos = torch.arange(length, dtype=torch.float64)
        total = (input_ids * (attention_mask if attention_mask is not None else 1)).sum(1).double()
        x = (1.3 * v[None, None, :] + 0.7 * pos[None, :, None] + 0.01 * total[:, None, None]
             + 0.2 * input_ids.double()[:, :, None])
        logits = 3 * torch.sin(x)
        for token, c in self.bump.items():
            logits[:, :, token] += c
        return logits.float()


class FixedProbabilityMLM(torch.nn.Module):
    """Every position predicts the same distribution ``probs`` (``logits = log probs``)."""

    def __init__(self, probs: torch.Tensor) -> None:
        super().__init__()
        self.logits = probs.double().log().float()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return self.logits.expand(*input_ids.shape, -1).clone()


def log(x: float) -> float:
    """``math.log``, spelled out for hand-computed expectations."""
    return math.log(x)
