"""Oracle round trips on real data (GPLinker events: duee1.0 dev).

Gold -> label tensors -> library decoders -> gold again.

Character-level tokenisation (one token per character, ``[CLS]`` first and ``[SEP]`` last), as for Chinese BERT.
"""

from __future__ import annotations

from pathlib import Path

from _oracle import ScoreBuffer, special_ends

from kexue.data.readers.event import TRIGGER_ROLE, read_duee, read_event_schema
from kexue.extraction import (
    char_offsets,
    decode_events,
    encode_events,
    event_arguments_as_text,
    example_events,
    gold_event_arguments,
)
from kexue.metrics.extraction import event_argument_prf, event_prf


def test_duee_dev_event_oracle(kexue_data: Path) -> None:
    schema = read_event_schema(kexue_data / "duee1.0" / "event_schema.json")
    labels = schema.labels()
    index = {label: n for n, label in enumerate(labels)}
    examples = read_duee(kexue_data / "duee1.0" / "dev.json", schema)
    width = max(len(ex.text) for ex in examples) + 2
    buffers = [ScoreBuffer(len(labels), width), ScoreBuffer(1, width), ScoreBuffer(1, width)]
    pred, gold, wrong = [], [], set()
    for ex in examples:
        off = char_offsets(ex.text)
        length = len(off)
        events, dropped = example_events(ex, off, index)
        assert not dropped
        scores = [buf.scores(lab, length) for buf, lab in
                  zip(buffers, encode_events([events], len(labels), length), strict=True)]
        decoded = decode_events(*scores, labels=labels, trigger_role=TRIGGER_ROLE, threshold=0,
                                special_tokens_mask=special_ends(length))[0]
        pred.append(event_arguments_as_text(decoded, ex.text, off))
        gold.append(gold_event_arguments(ex))
        if set(pred[-1]) != set(gold[-1]):
            wrong.add(ex.line)
    arguments = event_argument_prf(pred, gold, TRIGGER_ROLE)
    events = event_prf(pred, gold)
    print(f"DuEE 1.0 dev oracle: argument F1 {arguments.f1:.4f}, event F1 {events.f1:.4f} "
          f"(P {events.precision:.4f} R {events.recall:.4f}), {len(wrong)} texts differ")
    # Arguments are recovered exactly (the argument matrix is per (type, role) label and holds nested spans).
    assert arguments.f1 == 1.0 and arguments.n_gold == 3539
    # Events: links are keyed by spans only, so a span playing two roles in two same-type events (e.g. a team
    # that is 胜者 of "胜" and 败者 of "负") is attached to both triggers in both roles. Only texts with such a
    # span can go wrong; they hold 41 of the 1790 gold events, so even losing all of those events would leave
    # F1 >= 1 - 41/1790 = 0.977; and no gold event is ever lost (recall 1).
    ambiguous = set()
    for ex in examples:
        roles: dict[tuple, set] = {}
        for event in ex.events:
            for arg in event.all_arguments():
                roles.setdefault((event.event_type, arg.start, arg.end), set()).add(arg.role)
        if any(len(r) > 1 for r in roles.values()):
            ambiguous.add(ex.line)
    assert wrong <= ambiguous
    n_ambiguous_events = sum(len(ex.events) for ex in examples if ex.line in ambiguous)
    assert n_ambiguous_events == 41 and events.n_gold == 1790
    assert events.recall == 1.0 and events.f1 >= 1 - n_ambiguous_events / events.n_gold
