"""Span utilities: BIO tags <-> typed spans, and character <-> token offset mapping.

Conventions: token spans ``(start, end)`` are inclusive token indices (as GlobalPointer cells ``(i, j)``);
character spans are ``(start, end)`` with ``end`` exclusive, so ``text[start:end]`` is the entity text.

BIO decoding follows the CoNLL ``conlleval`` chunk rules (as seqeval's default mode): a chunk starts at ``B-X``,
at ``I-X`` after ``O`` and at ``I-X`` after a tag of another type; it continues over ``I-X`` of the same type.
Source: BIO ids as in bert4keras' NER example (``O = 0``, ``B-type_i = 2i+1``, ``I-type_i = 2i+2``),
https://kexue.fm/archives/8373 and https://kexue.fm/archives/7196.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _split_tags(tags: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Prefix array (``'B'``, ``'I'``, ``'O'``) and type array of BIO tags; raises ValueError on other tags."""
    arr = np.asarray(list(tags), dtype=str)
    parts = np.char.partition(arr, "-")
    prefixes, dash, types = parts[:, 0], parts[:, 1], parts[:, 2]
    is_o = arr == "O"
    valid = is_o | ((dash == "-") & ((prefixes == "B") | (prefixes == "I")) & (types != ""))
    if not valid.all():
        n = int(np.flatnonzero(~valid)[0])
        raise ValueError(f"position {n}: tag {tags[n]!r} is not 'O', 'B-<type>' or 'I-<type>'")
    return np.where(is_o, "O", prefixes), np.where(is_o, "", types)


def bio_to_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Typed spans ``(type, start, end)`` (inclusive token indices) of a BIO tag sequence, conlleval rules.

    Vectorized with numpy: chunk starts are found at once, each chunk ends before the next ``O`` or start.

    Raises:
        ValueError: a tag that is not ``O``, ``B-X`` or ``I-X``.
    """
    if len(tags) == 0:
        return []
    prefixes, types = _split_tags(tags)
    inside = prefixes != "O"
    prev_prefix = np.concatenate([np.asarray(["O"]), prefixes[:-1]])
    prev_type = np.concatenate([np.asarray([""]), types[:-1]])
    starts = inside & ((prefixes == "B") | (prev_prefix == "O") | (prev_type != types))
    breaks = np.flatnonzero(~inside | starts)
    start_idx = np.flatnonzero(starts)
    next_break = np.searchsorted(breaks, start_idx, side="right")
    ends = np.append(breaks, len(tags))[next_break] - 1
    return [(str(types[s]), int(s), int(e)) for s, e in zip(start_idx, ends, strict=True)]


def spans_to_bio(spans: Sequence[tuple[str, int, int]], length: int) -> list[str]:
    """BIO tags of length ``length`` for non-overlapping ``(type, start, end)`` spans (inclusive ends).

    Raises:
        ValueError: overlapping spans (BIO cannot express nesting) or a span outside ``[0, length)``.
    """
    tags = ["O"] * length
    for etype, start, end in sorted(spans, key=lambda s: (s[1], s[2])):
        if not 0 <= start <= end < length:
            raise ValueError(f"span ({etype!r}, {start}, {end}) outside [0, {length})")
        if any(t != "O" for t in tags[start:end + 1]):
            raise ValueError(f"span ({etype!r}, {start}, {end}) overlaps another span; BIO cannot express it")
        tags[start] = f"B-{etype}"
        tags[start + 1:end + 1] = [f"I-{etype}"] * (end - start)
    return tags


def bio_label_names(types: Sequence[str]) -> list[str]:
    """BIO label list ``['O', 'B-t0', 'I-t0', 'B-t1', ...]`` (``B-type_i = 2i+1``, ``I-type_i = 2i+2``)."""
    names = ["O"]
    for etype in types:
        names += [f"B-{etype}", f"I-{etype}"]
    return names


def char_to_token_maps(offsets: np.ndarray | Sequence[tuple[int, int]], text_length: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Character -> token lookup tables from a tokenizer's ``offset_mapping``.

    Args:
        offsets: ``[T, 2]`` ``(char_start, char_end_exclusive)`` per token; special tokens have ``start == end``.
        text_length: number of characters of the text.

    Returns:
        ``(start_map, end_map)``, int64 arrays ``[text_length]``: ``start_map[c]`` is the token whose first
        character is ``c`` and ``end_map[c]`` the token whose last character is ``c``; -1 where no token
        starts / ends there.
    """
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    start_map = np.full(text_length, -1, dtype=np.int64)
    end_map = np.full(text_length, -1, dtype=np.int64)
    real = np.flatnonzero(off[:, 1] > off[:, 0])
    # later tokens sharing a start keep the first one: write in reverse order
    start_map[off[real[::-1], 0]] = real[::-1]
    end_map[off[real, 1] - 1] = real
    return start_map, end_map


def char_spans_to_token_spans(char_spans: np.ndarray | Sequence[tuple[int, int]], start_map: np.ndarray,
                              end_map: np.ndarray) -> np.ndarray:
    """Map character spans ``[N, 2]`` (``end`` exclusive) to inclusive token spans ``[N, 2]``.

    Rows whose boundaries do not coincide with token boundaries (or fall outside the text) get ``(-1, -1)``;
    the caller decides (the GlobalPointer scripts drop such entities, and say so).
    """
    spans = np.asarray(char_spans, dtype=np.int64).reshape(-1, 2)
    n = len(start_map)
    ok = (spans[:, 0] >= 0) & (spans[:, 1] > spans[:, 0]) & (spans[:, 1] <= n)
    s = np.where(ok, start_map[np.clip(spans[:, 0], 0, max(n - 1, 0))] if n else -1, -1)
    e = np.where(ok, end_map[np.clip(spans[:, 1] - 1, 0, max(n - 1, 0))] if n else -1, -1)
    bad = (s < 0) | (e < 0) | (e < s)
    return np.where(bad[:, None], -1, np.stack([s, e], axis=1))


def token_spans_to_char_spans(token_spans: np.ndarray | Sequence[tuple[int, int]],
                              offsets: np.ndarray | Sequence[tuple[int, int]]) -> np.ndarray:
    """Map inclusive token spans ``[N, 2]`` to character spans ``[N, 2]`` (``end`` exclusive).

    ``start = offsets[i][0]``, ``end = offsets[j][1]`` (as in https://kexue.fm/archives/8373).
    """
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    spans = np.asarray(token_spans, dtype=np.int64).reshape(-1, 2)
    return np.stack([off[spans[:, 0], 0], off[spans[:, 1], 1]], axis=1)


def char_offsets(text: str, cls: bool = True, sep: bool = True) -> np.ndarray:
    """Offset mapping of character-level tokenisation (one token per character, as for Chinese BERT).

    Returns ``[T, 2]`` int64 with ``(0, 0)`` rows for ``[CLS]`` (first) and ``[SEP]`` (last) when asked.
    """
    idx = np.arange(len(text), dtype=np.int64)
    rows = [np.stack([idx, idx + 1], axis=1)]
    if cls:
        rows.insert(0, np.zeros((1, 2), dtype=np.int64))
    if sep:
        rows.append(np.zeros((1, 2), dtype=np.int64))
    return np.concatenate(rows, axis=0)
