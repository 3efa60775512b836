"""Oracle round trips on real data (NER: cluener2020 dev, people_daily_ner dev).

Gold -> label tensors -> library decoders -> gold again.

Character-level tokenisation (one token per character, ``[CLS]`` first and ``[SEP]`` last), as for Chinese BERT.
"""

from __future__ import annotations

from pathlib import Path

import torch

from kexue.data.readers.ner import NerExample, read_cluener, read_conll_bio
from kexue.extraction import char_offsets, char_spans_to_token_spans, char_to_token_maps, token_spans_to_char_spans
from kexue.extraction.spans import bio_to_spans, spans_to_bio
from kexue.metrics.extraction import entity_prf
from kexue.nn.global_pointer import decode_spans, mask_span_logits, span_labels_dense


def _ner_oracle(examples: list[NerExample]) -> None:
    """GlobalPointer labels -> masked scores -> decode_spans -> character entities, in length-sorted chunks."""
    types = sorted({e.type for ex in examples for e in ex.entities})
    type_id = {t: n for n, t in enumerate(types)}
    order = sorted(range(len(examples)), key=lambda n: len(examples[n].text))
    pred, gold = [], []
    for first in range(0, len(order), 128):
        chunk = [examples[n] for n in order[first:first + 128]]
        length = len(chunk[-1].text) + 2
        offsets, spans = [], []
        special = torch.ones(len(chunk), length, dtype=torch.bool)
        for b, ex in enumerate(chunk):
            off = char_offsets(ex.text)
            start_map, end_map = char_to_token_maps(off, len(ex.text))
            tok = char_spans_to_token_spans([(e.start, e.end) for e in ex.entities], start_map, end_map)
            assert (tok >= 0).all(), "character tokenisation covers every entity boundary"
            spans.append([(type_id[e.type], int(s), int(t)) for e, (s, t) in zip(ex.entities, tok, strict=True)])
            offsets.append(off)
            special[b, 1:len(ex.text) + 1] = False
        scores = mask_span_logits(span_labels_dense(spans, len(types), length) * 2 - 1, ~special, tril_mask=True)
        for ex, off, decoded in zip(chunk, offsets, decode_spans(scores, special_tokens_mask=special), strict=True):
            chars = token_spans_to_char_spans([(i, j) for _, i, j in decoded], off) if decoded else []
            pred.append({(types[h], int(s), int(e), ex.text[s:e]) for (h, _, _), (s, e) in zip(decoded, chars)})
            gold.append({(e.type, e.start, e.end, e.text) for e in ex.entities})
    prf = entity_prf(pred, gold)
    assert prf.f1 == 1.0 and prf.n_gold == sum(len(ex.entities) for ex in examples)


def test_cluener_dev_global_pointer_oracle(kexue_data: Path) -> None:
    examples = read_cluener(kexue_data / "cluener2020" / "dev.json")
    assert len(examples) == 1343
    _ner_oracle(examples)


def test_people_daily_dev_global_pointer_and_bio_oracle(kexue_data: Path) -> None:
    examples = read_conll_bio(kexue_data / "people_daily_ner" / "example.dev", sep="")
    assert len(examples) == 2318
    _ner_oracle(examples)
    for ex in examples:  # BIO (CRF / softmax heads) round trip: flat data, exact
        spans = bio_to_spans(list(ex.tags))
        assert spans_to_bio(spans, len(ex.tags)) == list(ex.tags)
        assert {(t, s, e + 1) for t, s, e in spans} == {(e.type, e.start, e.end) for e in ex.entities}


