"""kexue.extraction: span utilities and GPLinker labels/decoding for relation and event extraction.

Sources: https://kexue.fm/archives/8373 (GlobalPointer), https://kexue.fm/archives/8888 (GPLinker relations),
https://kexue.fm/archives/8926 (GPLinker events).
"""

from kexue.extraction.gplinker_event import (
    GPLinkerEvent,
    clique_search,
    decode_events,
    encode_events,
    event_arguments_as_text,
    example_events,
    gold_event_arguments,
)
from kexue.extraction.gplinker_relation import (
    GPLinkerRelation,
    decode_relations,
    encode_relations,
    example_quintuples,
    gplinker_loss,
    pad_cell_lists,
    quintuples_to_triples,
    sparse_labels_to_logits,
)
from kexue.extraction.spans import (
    bio_label_names,
    bio_to_spans,
    char_offsets,
    char_spans_to_token_spans,
    char_to_token_maps,
    spans_to_bio,
    token_spans_to_char_spans,
)

__all__ = [
    "GPLinkerEvent", "GPLinkerRelation", "bio_label_names", "bio_to_spans", "char_offsets",
    "char_spans_to_token_spans", "char_to_token_maps", "clique_search", "decode_events", "decode_relations",
    "encode_events", "encode_relations", "event_arguments_as_text", "example_events", "example_quintuples",
    "gold_event_arguments", "gplinker_loss", "pad_cell_lists", "quintuples_to_triples",
    "sparse_labels_to_logits", "spans_to_bio", "token_spans_to_char_spans",
]
