"""Verbalizers: each label maps to one or more label words, each word of any token length.

PET (https://kexue.fm/archives/7764) reads a label's score off the masked LM at the pattern's mask slots. For a
word ``v`` of ``K`` tokens placed at mask positions ``m_1..m_K`` the score is the MLM's joint log-probability
under its independence assumption, ``s(v) = Σ_k log p(v_k | pattern)[m_k]`` (full-vocabulary softmax at each
position). With several mask slots a word is a tuple, one part per slot, and the sum runs over every slot.

**Lengths rule (stated).** Words of different token lengths are each scored with their own copy of the pattern
whose mask slots have exactly that word's lengths ("per-length patterns"): no padding, no truncation of a word.
A word that does not fit into ``max_length`` with the pattern raises (:meth:`ClozePattern.encode`).

**Several words per label.** ``combine="sum-prob"`` (Su's choice, the default) scores a label by the summed
probabilities of its words, ``log Σ_w exp s(w)``; ``combine="mean-log"`` by the mean of the words' log-scores.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import torch

from kexue.errors import ConfigError

COMBINE = ("sum-prob", "mean-log")


@dataclass(frozen=True)
class LabelWord:
    """One tokenised label word: the label's index, the word's text and its token ids per mask slot."""

    label_index: int
    text: tuple[str, ...]
    ids: tuple[tuple[int, ...], ...]

    @property
    def lengths(self) -> tuple[int, ...]:
        """Token count per mask slot (the word's "length signature")."""
        return tuple(len(part) for part in self.ids)


class Verbalizer:
    """``{label: [word, ...]}``; a word is a string (one mask slot) or a tuple of strings (one per mask slot).

    Args:
        words: the label words, in label order (the mapping's order defines the score columns).
        combine: ``"sum-prob"`` or ``"mean-log"`` (see the module docstring).
    Raises:
        ConfigError: no labels, a label without words, an empty word, or an unknown ``combine`` (``--combine``).
    """

    def __init__(self, words: Mapping[Hashable, str | Sequence[str | Sequence[str]]], combine: str = "sum-prob"):
        if combine not in COMBINE:
            raise ConfigError(f"--combine: expected one of {', '.join(COMBINE)}, got {combine!r}")
        if not words:
            raise ConfigError("--verbalizer: expected at least one label")
        self.combine = combine
        self.labels = list(words)
        self.words: list[list[tuple[str, ...]]] = []
        for label, ws in words.items():
            ws = [ws] if isinstance(ws, str) else list(ws)
            if not ws:
                raise ConfigError(f"--verbalizer: label {label!r} has no words")
            parsed = [(w,) if isinstance(w, str) else tuple(w) for w in ws]
            if any(not part.strip() for w in parsed for part in w):
                raise ConfigError(f"--verbalizer: label {label!r} has an empty word")
            self.words.append(parsed)

    def __len__(self) -> int:
        return len(self.labels)

    def tokenize(self, tokenizer, num_slots: int = 1) -> list[LabelWord]:
        """Every word tokenised (no special tokens), in label order.

        Raises:
            ConfigError: a word with a different number of parts than ``num_slots``, a word that tokenises to
                nothing or contains ``[UNK]`` (it could never be predicted), naming the label and the word.
        """
        out = []
        unk = tokenizer.unk_token_id
        for index, (label, ws) in enumerate(zip(self.labels, self.words)):
            for w in ws:
                if len(w) != num_slots:
                    raise ConfigError(f"--verbalizer: label {label!r} word {w!r} has {len(w)} part(s), the pattern "
                                      f"has {num_slots} mask slot(s)")
                ids = tuple(tuple(tokenizer.backend(part, add_special_tokens=False)["input_ids"]) for part in w)
                if any(not part for part in ids) or any(unk in part for part in ids):
                    raise ConfigError(f"--verbalizer: label {label!r} word {w!r} is not in the vocabulary "
                                      f"(tokens {[tokenizer.convert_ids_to_tokens(p) for p in ids]})")
                out.append(LabelWord(index, w, ids))
        return out

    def combine_scores(self, word_scores: torch.Tensor, words: Sequence[LabelWord]) -> torch.Tensor:
        """Label scores ``[N, C]`` from word scores ``[N, W]`` (``W = len(words)``, columns in ``words`` order)."""
        if word_scores.shape[-1] != len(words):
            raise ConfigError(f"expected {len(words)} word-score columns, got {word_scores.shape[-1]}")
        cols = []
        for c in range(len(self.labels)):
            idx = [i for i, w in enumerate(words) if w.label_index == c]
            part = word_scores[:, idx]
            cols.append(part.logsumexp(-1) if self.combine == "sum-prob" else part.mean(-1))
        return torch.stack(cols, dim=-1)


def parse_verbalizer(text: str) -> dict[str, list[str | list[str]]]:
    """``--verbalizer`` as JSON (``{"0": ["不"], "1": ["很"]}``) or ``label=word|word,label=word`` text.

    Raises:
        ConfigError: malformed text (naming ``--verbalizer``).
    """
    import json

    text = text.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"--verbalizer: invalid JSON ({err.msg})") from None
        if not isinstance(obj, dict):
            raise ConfigError("--verbalizer: expected a JSON object {label: [words]}")
        return {str(k): ([v] if isinstance(v, str) else list(v)) for k, v in obj.items()}
    out: dict[str, list[str | list[str]]] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in item:
            raise ConfigError(f"--verbalizer: expected label=word|word items separated by commas, got {item!r}")
        label, words = item.split("=", 1)
        out[label.strip()] = [w for w in words.split("|") if w]
    if not out:
        raise ConfigError("--verbalizer: expected at least one label=word item")
    return out
