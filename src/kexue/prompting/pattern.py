"""Cloze patterns: a template with text slots, mask slots and trainable-prompt slots, encoded to token ids.

A template is a string with these slots (everything else is literal text, tokenised as such):

* ``{text}`` (= ``{text_a}``) and ``{text_b}`` — the example's text(s);
* ``{mask}`` — one *mask slot*: it becomes as many ``[MASK]`` tokens as the label word placed there has tokens
  (a template may hold several mask slots, at any position: prefix, middle, suffix);
* ``{p}`` — one trainable prompt token (P-tuning, https://kexue.fm/archives/8295): the ``k``-th ``{p}`` is
  filled with the ``k``-th id of ``prompt_ids``.

Examples: PET's sentiment pattern P1 ``"{mask}满意。{text}"`` (https://kexue.fm/archives/7764), the short-news
pattern ``"下面报导一则{mask}新闻。{text}"`` with a two-token label word, P-tuning's reference layout
``"{p}{p}{p}{p}{mask}{p}{p}{p}{p}{text}"``.

Layout of an encoded example: ``[CLS] pieces... [SEP]`` in one segment (token type 0). Only the texts are ever
truncated (longest first); if the pattern, the prompt tokens and the mask tokens alone do not fit into
``max_length`` the encoding raises instead of cutting a label word.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kexue.errors import ConfigError

SLOT = re.compile(r"\{(text|text_a|text_b|mask|p)\}")
TEXT_SLOTS = ("text_a", "text_b")


@dataclass(frozen=True)
class EncodedPattern:
    """One pattern-wrapped example.

    Attributes:
        input_ids: ``[CLS] ... [SEP]`` token ids (no padding).
        mask_positions: per mask slot, the positions (indices into ``input_ids``) of its ``[MASK]`` tokens.
        prompt_positions: positions of the ``{p}`` tokens, in template order.
    """

    input_ids: list[int]
    mask_positions: list[list[int]]
    prompt_positions: list[int]


def as_fields(example: str | Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    """An example as ``{"text_a": ..., "text_b": ...}``: a string is ``text_a``, a pair ``(a, b)`` both, a mapping
    with ``text``/``text_a``/``text_b`` keys as given."""
    if isinstance(example, str):
        return {"text_a": example}
    if isinstance(example, Mapping):
        out = {("text_a" if k == "text" else k): v for k, v in example.items()}
        return {k: v for k, v in out.items() if k in TEXT_SLOTS and v is not None}
    parts = list(example)
    if len(parts) not in (1, 2):
        raise ConfigError(f"pattern input: expected a text or a (text_a, text_b) pair, got {len(parts)} items")
    return dict(zip(TEXT_SLOTS, parts))


class ClozePattern:
    """A cloze template (see the module docstring for the slot syntax).

    Args:
        template: the template string, with at least one ``{mask}`` slot and at least one text slot.
    Attributes:
        template, pieces (``(kind, value)`` in order: ``("lit", str)``, ``("text_a"|"text_b", None)``,
        ``("mask", None)``, ``("p", None)``), num_masks, num_prompts, text_fields (the text slots used).
    Raises:
        ConfigError: no mask slot, no text slot, a text slot used twice, or an unknown ``{...}`` slot.
    """

    def __init__(self, template: str) -> None:
        self.template = template
        pieces: list[tuple[str, str | None]] = []
        pos = 0
        for m in SLOT.finditer(template):
            if m.start() > pos:
                pieces.append(("lit", template[pos:m.start()]))
            kind = "text_a" if m.group(1) == "text" else m.group(1)
            pieces.append((kind, None))
            pos = m.end()
        if pos < len(template):
            pieces.append(("lit", template[pos:]))
        for kind, value in pieces:
            if kind == "lit" and re.search(r"\{[a-z_]*\}", value):
                raise ConfigError(f"--pattern {template!r}: unknown slot {re.search(r'{[a-z_]*}', value).group(0)}; "
                                  "the slots are {text}, {text_a}, {text_b}, {mask} and {p}")
        self.pieces = pieces
        kinds = [k for k, _ in pieces]
        self.num_masks = kinds.count("mask")
        self.num_prompts = kinds.count("p")
        self.text_fields = [k for k in kinds if k in TEXT_SLOTS]
        if self.num_masks == 0:
            raise ConfigError(f"--pattern {template!r}: expected at least one {{mask}} slot")
        if not self.text_fields:
            raise ConfigError(f"--pattern {template!r}: expected a {{text}} (or {{text_a}}/{{text_b}}) slot")
        if len(set(self.text_fields)) != len(self.text_fields):
            raise ConfigError(f"--pattern {template!r}: each text slot may appear once")

    def __repr__(self) -> str:
        return f"ClozePattern({self.template!r})"

    def encode(self, tokenizer, example: str | Sequence[str] | Mapping[str, str], mask_lengths: Sequence[int],
               max_length: int = 128, prompt_ids: Sequence[int] | None = None) -> EncodedPattern:
        """Encode one example with mask slot ``s`` expanded to ``mask_lengths[s]`` ``[MASK]`` tokens.

        Args:
            tokenizer: a :class:`kexue.data.Tokenizer` (``backend``, ``cls/sep/mask_token_id``).
            example: a text, a ``(text_a, text_b)`` pair, or a mapping (see :func:`as_fields`).
            mask_lengths: one positive length per mask slot (the token count of the label word placed there).
            max_length: the most tokens of the result, ``[CLS]`` and ``[SEP]`` included.
            prompt_ids: the ids of the ``{p}`` slots (exactly ``num_prompts`` of them).
        Returns:
            an :class:`EncodedPattern`.
        Raises:
            ConfigError: wrong number of mask lengths or prompt ids, a text slot without text, or a pattern whose
                fixed part (literals, prompts, masks) leaves no room for one text token per text slot within
                ``max_length`` (naming ``--max-length``).
        """
        if len(mask_lengths) != self.num_masks or any(n < 1 for n in mask_lengths):
            raise ConfigError(f"pattern {self.template!r}: expected {self.num_masks} positive mask lengths, got "
                              f"{list(mask_lengths)}")
        prompt_ids = list(prompt_ids or [])
        if len(prompt_ids) != self.num_prompts:
            raise ConfigError(f"pattern {self.template!r}: expected {self.num_prompts} prompt ids, got "
                              f"{len(prompt_ids)}")
        fields = as_fields(example)
        missing = [f for f in self.text_fields if f not in fields]
        if missing:
            raise ConfigError(f"pattern {self.template!r}: the example has no {', '.join(missing)}")
        literal_ids = {i: self._tokens(tokenizer, v) for i, (k, v) in enumerate(self.pieces) if k == "lit"}
        text_ids = {f: self._tokens(tokenizer, fields[f]) for f in self.text_fields}
        fixed = 2 + sum(len(v) for v in literal_ids.values()) + sum(mask_lengths) + self.num_prompts
        budget = max_length - fixed
        if budget < len(self.text_fields):
            raise ConfigError(f"--max-length {max_length}: pattern {self.template!r} with mask lengths "
                              f"{list(mask_lengths)} takes {fixed} tokens, leaving no room for the text; a label "
                              "word is never cut, so raise --max-length or shorten the pattern")
        while sum(len(v) for v in text_ids.values()) > budget:        # longest first, texts only
            longest = max(text_ids, key=lambda f: len(text_ids[f]))
            text_ids[longest] = text_ids[longest][:-1]
        ids = [tokenizer.cls_token_id]
        masks: list[list[int]] = []
        prompts: list[int] = []
        slot, p = 0, 0
        for i, (kind, _) in enumerate(self.pieces):
            if kind == "lit":
                ids.extend(literal_ids[i])
            elif kind in TEXT_SLOTS:
                ids.extend(text_ids[kind])
            elif kind == "mask":
                masks.append(list(range(len(ids), len(ids) + mask_lengths[slot])))
                ids.extend([tokenizer.mask_token_id] * mask_lengths[slot])
                slot += 1
            else:
                prompts.append(len(ids))
                ids.append(prompt_ids[p])
                p += 1
        ids.append(tokenizer.sep_token_id)
        return EncodedPattern(ids, masks, prompts)

    @staticmethod
    def _tokens(tokenizer, text: str) -> list[int]:
        return list(tokenizer.backend(text, add_special_tokens=False)["input_ids"])


def plain_encoding(tokenizer, example: str | Sequence[str] | Mapping[str, str], max_length: int = 128) -> list[int]:
    """``[CLS] text_a [SEP] (text_b [SEP])`` ids of an example without any pattern (PET's unlabelled texts)."""
    fields = as_fields(example)
    enc = tokenizer(fields["text_a"], fields.get("text_b"), max_length=max_length)
    return list(enc["input_ids"][0])
