"""Whole-word masking for masked-language-model pretraining (BERT-wwm, with words from jieba for Chinese).

BERT's recipe (Devlin et al. 2019) as used for RoFormer / RoFormerV2 pretraining (https://kexue.fm/archives/8265,
https://kexue.fm/archives/8998): choose 15% of the *words* of a sequence; every token of a chosen word is a
prediction target; of the chosen words 80% become ``[MASK]``, 10% stay as they are, 10% become random tokens.
Chinese text is tokenised into characters and segmented into words by jieba, so a word of several
characters is always masked as a whole (Google's / HFL's whole-word masking).

Design choices (stated, and tested):

* **Number of words**: per sequence ``n = floor(0.15·W + u)``, ``u ~ U[0, 1)`` (stochastic rounding), chosen
  uniformly without replacement. Exactly 15% of the words in expectation, never more than one word off, and
  short sequences are not starved as with ``round`` (3 words would never be masked).
* **80/10/10 per word** (``decide="word"``, the default): one draw per chosen word, applied to all its
  tokens. Google's ``create_pretraining_data.py`` with ``do_whole_word_mask`` draws per token of a chosen
  word (``decide="token"`` reproduces it), which leaves some characters of a "masked" word visible or
  replaced while their neighbours are ``[MASK]`` — the partial-word leak whole-word masking exists to
  prevent. The token proportions are 80/10/10 in expectation either way.
* Random replacements are uniform over ``random_ids`` (default: every id that is not a special token).
* Tokens with word id ``-1`` (special tokens, padding) and any id in ``special_ids`` are never chosen.
* All randomness comes from the ``torch.Generator`` passed in; drawing anew each epoch gives dynamic masking.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from kexue.errors import ConfigError

IGNORE_INDEX = -100


# ---------------------------------------------------------------------- words
@functools.lru_cache(maxsize=1)
def _jieba():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


def segment_words(text: str) -> list[tuple[int, int]]:
    """Word spans ``(start, end)`` (character offsets into ``text``) from jieba's default (accurate) mode,
    whitespace-only words dropped. Runs of Latin letters / digits are one word each."""
    return [(start, end) for word, start, end in _jieba().tokenize(text) if word.strip()]


def align_words(offsets: Sequence[tuple[int, int]], word_spans: Sequence[tuple[int, int]]) -> list[int]:
    """Word index of each token: the word whose span contains the token's first character.

    Args:
        offsets: per token ``(start, end)`` character span (``(0, 0)`` = special token), as returned by
            :class:`kexue.data.Tokenizer` with ``return_offsets=True``.
        word_spans: ``(start, end)`` of each word (e.g. :func:`segment_words`), sorted, non-overlapping.
    Returns:
        list of ints, ``-1`` for special tokens and tokens outside every word; the words that own a token are
        numbered ``0, 1, ...`` in order (words without tokens are skipped).
    """
    starts = [s for s, _ in word_spans]
    out, numbering = [], {}
    for start, end in offsets:
        if end <= start:
            out.append(-1)
            continue
        w = bisect.bisect_right(starts, start) - 1
        if w < 0 or start >= word_spans[w][1]:
            out.append(-1)
            continue
        out.append(numbering.setdefault(w, len(numbering)))
    return out


def pad_word_ids(rows: Sequence[Sequence[int]], length: int | None = None) -> torch.Tensor:
    """``[B, L]`` long tensor of word ids, right-padded with ``-1`` to ``length`` (default: the longest row)."""
    length = max((len(r) for r in rows), default=0) if length is None else length
    out = torch.full((len(rows), length), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        n = min(len(row), length)
        out[i, :n] = torch.as_tensor(list(row[:n]), dtype=torch.long)
    return out


# ---------------------------------------------------------------------- masking
@dataclass(frozen=True)
class MaskingConfig:
    """Whole-word masking rates.

    Attributes:
        word_probability: fraction of words to choose (``--mlm-probability``), 0.15.
        mask_ratio / random_ratio: of the chosen words (or tokens), the fraction replaced by ``[MASK]`` / by a
            random token; the rest (``1 - mask - random``) stays unchanged. 0.8 / 0.1.
        decide: ``"word"`` (one 80/10/10 draw per chosen word) or ``"token"`` (per token, as Google's script).
    Raises:
        ConfigError: rates outside ``[0, 1]`` or ``mask_ratio + random_ratio > 1`` (naming the option).
    """

    word_probability: float = 0.15
    mask_ratio: float = 0.8
    random_ratio: float = 0.1
    decide: str = "word"

    def __post_init__(self) -> None:
        if not 0.0 <= self.word_probability <= 1.0:
            raise ConfigError(f"--mlm-probability: expected a value in [0, 1], got {self.word_probability}")
        for flag, value in (("--mask-ratio", self.mask_ratio), ("--random-ratio", self.random_ratio)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{flag}: expected a value in [0, 1], got {value}")
        if self.mask_ratio + self.random_ratio > 1.0 + 1e-12:
            raise ConfigError(f"--mask-ratio + --random-ratio must be <= 1, got {self.mask_ratio} + "
                              f"{self.random_ratio}")
        if self.decide not in ("word", "token"):
            raise ConfigError(f"--mask-decide: expected 'word' or 'token', got {self.decide!r}")


def whole_word_mask(
    input_ids: torch.Tensor,
    word_ids: torch.Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    generator: torch.Generator,
    config: MaskingConfig = MaskingConfig(),
    special_ids: Sequence[int] = (),
    random_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply whole-word MLM masking to a batch.

    Args:
        input_ids: ``[B, L]`` long token ids (not modified).
        word_ids: ``[B, L]`` long, the word index of each token within its row (``0..W-1``), ``-1`` for tokens
            that must never be masked (``[CLS]``, ``[SEP]``, padding). See :func:`align_words`.
        mask_token_id: id of ``[MASK]``; vocab_size: size of the vocabulary.
        generator: the source of all randomness (seed it per epoch for dynamic masking).
        config: the rates and the per-word / per-token decision (:class:`MaskingConfig`).
        special_ids: ids never chosen whatever their word id, and excluded from random replacements.
        random_ids: ``[N]`` long candidate ids for random replacements (default: all ids not in
            ``special_ids`` and not ``mask_token_id``).
    Returns:
        ``(masked_input_ids [B, L], labels [B, L])``: labels hold the original id at every chosen token and
        ``-100`` elsewhere (the loss positions are exactly the chosen tokens).
    Raises:
        ConfigError: shapes differ, or no candidate id for random replacement.
    """
    if input_ids.shape != word_ids.shape or input_ids.dim() != 2:
        raise ConfigError(f"input_ids {tuple(input_ids.shape)} and word_ids {tuple(word_ids.shape)} must both be "
                          "[batch, seq_len]")
    device = input_ids.device
    word_ids = word_ids.clone()
    excluded = set(int(i) for i in special_ids) | {int(mask_token_id)}
    if special_ids:
        word_ids[torch.isin(input_ids, torch.tensor(sorted(set(special_ids)), device=device))] = -1
    batch, _ = input_ids.shape
    n_words = (word_ids.max(dim=1).values + 1).clamp_min(0)                 # [B]
    width = max(int(n_words.max().item()) if batch else 0, 1)
    # choose floor(p·W + u) words per row, uniformly without replacement
    n_pick = torch.floor(n_words.double() * config.word_probability
                         + torch.rand(batch, generator=generator, dtype=torch.float64)).long()
    n_pick = torch.minimum(n_pick, n_words)
    scores = torch.rand(batch, width, generator=generator)
    scores[torch.arange(width)[None, :] >= n_words[:, None]] = 2.0         # absent words sort last
    rank = scores.argsort(dim=1).argsort(dim=1)
    chosen_word = rank < n_pick[:, None]                                    # [B, W]
    action_words = torch.rand(batch, width, generator=generator)           # one 80/10/10 draw per word
    action_tokens = torch.rand(input_ids.shape, generator=generator)       # or one per token
    safe = word_ids.clamp_min(0).cpu()
    chosen = torch.gather(chosen_word, 1, safe) & (word_ids.cpu() >= 0)
    if config.decide == "word":
        action = torch.gather(action_words, 1, safe)
    else:
        action = action_tokens
    if random_ids is None:
        keep = torch.ones(vocab_size, dtype=torch.bool)
        keep[[i for i in excluded if 0 <= i < vocab_size]] = False
        random_ids = torch.nonzero(keep).squeeze(1)
    if random_ids.numel() == 0:
        raise ConfigError("whole_word_mask: no candidate ids for random replacement")
    pick = torch.randint(random_ids.numel(), input_ids.shape, generator=generator)
    replacement = random_ids.cpu()[pick]
    to_mask = chosen & (action < config.mask_ratio)
    to_random = chosen & (action >= config.mask_ratio) & (action < config.mask_ratio + config.random_ratio)
    chosen, to_mask, to_random = chosen.to(device), to_mask.to(device), to_random.to(device)
    masked = input_ids.clone()
    masked[to_mask] = mask_token_id
    masked[to_random] = replacement.to(device)[to_random]
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[chosen] = input_ids[chosen]
    return masked, labels
