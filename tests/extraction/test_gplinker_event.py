"""GPLinker events: clique search (spec §5 example), labels and decoding."""

from __future__ import annotations

import itertools

import pytest
import torch

from kexue.extraction.gplinker_event import GPLinkerEvent, clique_search, decode_events, encode_events
from kexue.extraction.gplinker_relation import sparse_labels_to_logits

T, A, B, C = ("trigger", 0, 0), ("A", 2, 3), ("B", 5, 5), ("C", 7, 8)


def _all_pairs(nodes: list) -> set:
    return {(a, b) for a in nodes for b in nodes if a != b}


def test_clique_search_spec_example() -> None:
    links = _all_pairs([T, A, B, C]) - {(B, C), (C, B)}
    assert sorted(clique_search([T, A, B, C], links)) == sorted([tuple(sorted((T, A, B))), tuple(sorted((T, A, C)))])


def test_clique_search_full_and_empty_graphs() -> None:
    nodes = [T, A, B, C]
    assert clique_search(nodes, _all_pairs(nodes)) == [tuple(sorted(nodes))]
    assert sorted(clique_search(nodes, set())) == sorted((n,) for n in nodes)
    one_way = {(T, A)}  # either orientation counts
    assert sorted(clique_search([T, A, B], one_way)) == sorted([tuple(sorted((T, A))), (B,)])


LABELS = [("win", "trigger"), ("win", "winner"), ("win", "loser"), ("lose", "trigger"), ("lose", "loser")]


def _scores(events: list, length: int) -> list:
    return [sparse_labels_to_logits(lab, length) for lab in encode_events([events], len(LABELS), length)]


def test_two_events_sharing_an_argument_decode_exactly() -> None:
    # event 1: trigger (1,1), winner (3,4), loser (6,6); event 2: trigger (8,8), winner (3,4), loser (10,11)
    events = [[(0, 1, 1), (1, 3, 4), (2, 6, 6)], [(0, 8, 8), (1, 3, 4), (2, 10, 11)]]
    decoded = decode_events(*_scores(events, 13), labels=LABELS, trigger_role="trigger")[0]
    expected = [tuple(sorted((LABELS[lab][0], LABELS[lab][1], h, t) for lab, h, t in ev)) for ev in events]
    assert sorted(decoded) == sorted(expected)


def test_link_needs_head_and_tail_agreement() -> None:
    events = [[(0, 1, 1), (1, 3, 4), (2, 6, 7)]]
    scores = _scores(events, 9)
    whole = decode_events(*scores, labels=LABELS, trigger_role="trigger")[0]
    assert len(whole) == 1 and len(whole[0]) == 3
    scores[2][0, 0, 4, 7] = -10.0  # tail link of winner (3,4) - loser (6,7)
    split = decode_events(*scores, labels=LABELS, trigger_role="trigger")[0]
    assert sorted(len(e) for e in split) == [2, 2]


def test_types_never_merge_and_trigger_required() -> None:
    events = [[(0, 1, 1), (1, 3, 3)], [(3, 5, 5), (4, 3, 3)]]  # 'lose' event shares the span (3,3)
    scores = _scores(events, 8)
    # link every pair of spans: types must still keep the events apart
    scores[1][:] = 10.0
    scores[2][:] = 10.0
    decoded = decode_events(*scores, labels=LABELS, trigger_role="trigger")[0]
    assert sorted(decoded) == sorted([(("win", "trigger", 1, 1), ("win", "winner", 3, 3)),
                                      (("lose", "loser", 3, 3), ("lose", "trigger", 5, 5))])
    no_trigger = [[(1, 3, 3), (2, 5, 6)]]
    assert decode_events(*_scores(no_trigger, 8), labels=LABELS, trigger_role="trigger")[0] == []
    kept = decode_events(*_scores(no_trigger, 8), labels=LABELS, trigger_role="trigger", require_trigger=False)[0]
    assert kept == [(("win", "loser", 5, 6), ("win", "winner", 3, 3))]


def test_clique_search_returns_exactly_the_maximal_cliques() -> None:
    """Exhaustive over all 1024 graphs on 5 nodes, against brute-force maximal-clique enumeration."""
    nodes = list(range(5))
    pairs = list(itertools.combinations(nodes, 2))
    subsets = [s for k in range(1, 6) for s in itertools.combinations(nodes, k)]
    for bits in range(1 << len(pairs)):
        links = {p for n, p in enumerate(pairs) if bits >> n & 1}
        cliques = [s for s in subsets if all(p in links for p in itertools.combinations(s, 2))]
        maximal = {s for s in cliques if not any(set(s) < set(o) for o in cliques)}
        found = clique_search(nodes, links)
        assert len(found) == len(set(found)) and set(found) == maximal


def test_encode_errors_and_module_shapes() -> None:
    with pytest.raises(ValueError, match="CLS"):
        encode_events([[[(0, 0, 1)]]], len(LABELS), 5)
    model = GPLinkerEvent(hidden_size=16, num_labels=len(LABELS), head_size=8)
    argu, head, tail = model(torch.randn(2, 6, 16), torch.ones(2, 6))
    assert argu.shape == (2, 5, 6, 6) and head.shape == (2, 1, 6, 6) and tail.shape == (2, 1, 6, 6)
    assert (head[:, :, 3, 1] == torch.finfo(head.dtype).min).all()  # links live at (min, max)
