"""GPLinker for joint event extraction: argument labels, head/tail links, clique search, decoding.

Source: "GPLinker:基于GlobalPointer的事件联合抽取", https://kexue.fm/archives/8926 (method as in the author's
``duee_v1.py``, summarised in the spec §5).

The trigger is one more role. Argument recognition is NER over labels ``(event_type, role)``: an argument is
``(label, head, tail)`` (token indices, inclusive). Arguments of one event are linked pairwise in a head–head
matrix at ``(min(h1, h2), max(h1, h2))`` and a tail–tail matrix at ``(min(t1, t2), max(t1, t2))`` (1 head each,
RoPE off, lower-triangle mask on since links are stored at ``(min, max)``). Decoding: two arguments are linked
iff both cells score above the threshold; within each event type the arguments are split into complete
subgraphs (cliques) of the link graph; events without a trigger are dropped.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from kexue.data.readers.event import EventExample
from kexue.extraction.gplinker_relation import pad_cell_lists
from kexue.extraction.spans import char_spans_to_token_spans, char_to_token_maps
from kexue.nn.global_pointer import EfficientGlobalPointer, GlobalPointer, span_indices

Argument = tuple[int, int, int]
"""``(label index, head token, tail token)``."""


def clique_search(nodes: Sequence[Hashable], links: set[tuple[Hashable, Hashable]]) -> list[tuple]:
    """Split ``nodes`` into complete subgraphs of the (undirected) link graph.

    If every pair is linked, the answer is ``[sorted(nodes)]``. Otherwise, for every unlinked pair ``(a, b)``
    form ``N(a) = {a} ∪ {n linked to a}`` and ``N(b)`` (each lacks the other end of the pair, so the recursion
    terminates), recurse on each distinct neighbourhood and return the deduplicated union, in first-found
    order. A node may belong to several groups (an argument shared by two events). The result is exactly the
    set of maximal cliques (checked exhaustively on every graph of 5 nodes in the tests). Memoised on the node
    set; still exponential in the worst case, fine for sentences.

    Args:
        nodes: distinct, mutually comparable hashable nodes.
        links: pairs ``(a, b)``; either orientation counts.

    Returns:
        List of sorted node tuples.

    Example (spec §5): T, A, B, C with all pairs linked except B–C -> ``[(T, A, B), (T, A, C)]``.

    Source: https://kexue.fm/archives/8926.
    """
    def linked(a: Hashable, b: Hashable) -> bool:
        return (a, b) in links or (b, a) in links

    memo: dict[tuple, list[tuple]] = {}

    def search(group: tuple) -> list[tuple]:
        if group in memo:
            return memo[group]
        parts: dict[tuple, None] = {}
        for x, a in enumerate(group):
            for b in group[x + 1:]:
                if not linked(a, b):
                    for host in (a, b):
                        parts[tuple(n for n in group if n == host or linked(host, n))] = None
        if not parts:
            result = [group]
        else:
            found: dict[tuple, None] = {}
            for part in parts:
                for clique in search(part):
                    found[clique] = None
            result = list(found)
        memo[group] = result
        return result

    return search(tuple(sorted(set(nodes))))


def encode_events(events: Sequence[Sequence[Sequence[Argument]]], num_labels: int, length: int
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """Sparse labels for a batch: per example a list of events, each a list of ``(label, head, tail)``.

    Returns:
        ``(argu [B, num_labels, K1], head_link [B, 1, K2], tail_link [B, 1, K3])`` int64 flat indices
        ``row·L + col`` (0-padded, for sparse multi-label CE with ``mask_zero=True``). Links are stored at
        ``(min, max)`` for every pair of distinct arguments within one event.

    Raises:
        ValueError: a label outside ``[0, num_labels)``, a token outside ``[1, L)`` or tail < head.
    """
    argu, heads, tails = [], [], []
    for example in events:
        argu_cells: list[list[int]] = [[] for _ in range(num_labels)]
        head_cells: list[int] = []
        tail_cells: list[int] = []
        for event in example:
            event = list(dict.fromkeys(event))
            for label, h, t in event:
                if not (0 <= label < num_labels and 0 < h <= t < length):
                    raise ValueError(f"argument {(label, h, t)} invalid for {num_labels} labels, L={length} "
                                     "(token 0 is [CLS] and cannot be part of a span)")
                argu_cells[label].append(h * length + t)
            for x, (_, h1, t1) in enumerate(event):
                for _, h2, t2 in event[x + 1:]:
                    head_cells.append(min(h1, h2) * length + max(h1, h2))
                    tail_cells.append(min(t1, t2) * length + max(t1, t2))
        argu.append(argu_cells)
        heads.append([head_cells])
        tails.append([tail_cells])
    return pad_cell_lists(argu, length), pad_cell_lists(heads, length), pad_cell_lists(tails, length)


def decode_events(argu_logits: Tensor, head_logits: Tensor, tail_logits: Tensor,
                  labels: Sequence[tuple[str, str]], trigger_role: str, threshold: float = 0.0,
                  special_tokens_mask: Tensor | None = None, require_trigger: bool = True
                  ) -> list[list[tuple[tuple[str, str, int, int], ...]]]:
    """Decode GPLinker event scores into events.

    1. Arguments ``{(label, h, t): S_argu[label, h, t] > threshold}``.
    2. Arguments ``a, b`` are linked iff ``S_head[min(h_a,h_b), max(h_a,h_b)] > threshold`` and
       ``S_tail[min(t_a,t_b), max(t_a,t_b)] > threshold`` (one vectorized gather over all pairs).
    3. Per event type, :func:`clique_search` on the arguments of that type; types never merge.
    4. With ``require_trigger``, events without a ``trigger_role`` argument are dropped. (The author's
       submission step also drops events that are subsets of another same-type event; :func:`clique_search`
       returns maximal cliques only, so no such subset ever appears here.)

    Args:
        argu_logits: ``[B, n_labels, L, L]``; head_logits, tail_logits: ``[B, 1, L, L]``.
        labels: ``(event_type, role)`` of each argument head.
        trigger_role: the role name of triggers.
        special_tokens_mask: ``[B, L]``, True at tokens that cannot be part of an argument.

    Returns:
        Per example, a list of events; an event is a sorted tuple of ``(event_type, role, head, tail)``.

    Source: https://kexue.fm/archives/8926.
    """
    rows = span_indices(argu_logits, threshold, special_tokens_mask)
    out = []
    for b in range(argu_logits.shape[0]):
        mine = rows[rows[:, 0] == b][:, 1:]
        h, t = mine[:, 1], mine[:, 2]
        hl = head_logits[b, 0][torch.minimum(h[:, None], h[None]), torch.maximum(h[:, None], h[None])]
        tl = tail_logits[b, 0][torch.minimum(t[:, None], t[None]), torch.maximum(t[:, None], t[None])]
        linked = (hl > threshold) & (tl > threshold)
        nodes = [(labels[n][0], labels[n][1], hh, tt) for n, hh, tt in mine.tolist()]
        links = {(nodes[x], nodes[y]) for x, y in torch.nonzero(linked).tolist() if x != y}
        by_type: dict[str, list] = {}
        for node in nodes:
            by_type.setdefault(node[0], []).append(node)
        events = []
        for group in by_type.values():
            for event in clique_search(group, links):
                if require_trigger and not any(node[1] == trigger_role for node in event):
                    continue
                events.append(event)
        out.append(events)
    return out


def example_events(example: EventExample, offsets: np.ndarray, label_index: dict[tuple[str, str], int]
                   ) -> tuple[list[list[Argument]], list[tuple[int, int]]]:
    """Token-level events of an :class:`EventExample` under a tokenisation's ``offset_mapping`` ``[T, 2]``.

    Args:
        label_index: ``{(event_type, role): label}``, the trigger under its role name.

    Returns:
        ``(events, dropped)``: per event its ``(label, head, tail)`` arguments (trigger first); ``dropped`` lists
        ``(event index, argument index)`` (0 = trigger) of arguments whose boundaries are not token boundaries.

    Raises:
        KeyError: an ``(event_type, role)`` missing from ``label_index``.
    """
    start_map, end_map = char_to_token_maps(offsets, len(example.text))
    events, dropped = [], []
    for e, event in enumerate(example.events):
        args = event.all_arguments()
        spans = char_spans_to_token_spans([(a.start, a.end) for a in args], start_map, end_map)
        kept = []
        for n, arg in enumerate(args):
            if spans[n, 0] < 0:
                dropped.append((e, n))
                continue
            kept.append((label_index[(event.event_type, arg.role)], int(spans[n, 0]), int(spans[n, 1])))
        events.append(kept)
    return events, dropped


def event_arguments_as_text(events: Sequence[Sequence[tuple[str, str, int, int]]], text: str,
                            offsets: np.ndarray) -> list[tuple[tuple[str, str, str, int], ...]]:
    """Decoded events with ``(event_type, role, head, tail)`` tokens turned into
    ``(event_type, role, argument_text, char_start)`` (``offsets`` ``[T, 2]``), each event sorted."""
    off = np.asarray(offsets)
    return [tuple(sorted((etype, role, text[off[h, 0]:off[t, 1]], int(off[h, 0])) for etype, role, h, t in event))
            for event in events]


def gold_event_arguments(example: EventExample) -> list[tuple[tuple[str, str, str, int], ...]]:
    """Gold events of ``example`` as sorted tuples of ``(event_type, role, argument_text, char_start)``."""
    return [tuple(sorted((ev.event_type, a.role, a.text, a.start) for a in ev.all_arguments()))
            for ev in example.events]


class GPLinkerEvent(nn.Module):
    """The three GPLinker event pointers over encoder states.

    Args:
        hidden_size: encoder width ``H``.
        num_labels: number of ``(event_type, role)`` labels (triggers included).
        head_size: ``d`` (64).
        efficient: Efficient GlobalPointer heads (the author's choice).

    Forward: ``hidden_states`` ``[B, L, H]``, ``attention_mask`` ``[B, L]`` ->
    ``(argu [B, num_labels, L, L], head_link [B, 1, L, L], tail_link [B, 1, L, L])``; the link pointers have
    RoPE off and the lower-triangle mask on (links are stored at ``(min, max)``).

    Source: https://kexue.fm/archives/8926.
    """

    def __init__(self, hidden_size: int, num_labels: int, head_size: int = 64, efficient: bool = True) -> None:
        super().__init__()
        pointer = EfficientGlobalPointer if efficient else GlobalPointer
        self.argu = pointer(hidden_size, num_labels, head_size, rope=True, tril_mask=True)
        self.head_link = pointer(hidden_size, 1, head_size, rope=False, tril_mask=True)
        self.tail_link = pointer(hidden_size, 1, head_size, rope=False, tril_mask=True)

    def forward(self, hidden_states: Tensor, attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Scores of the argument, head-link and tail-link pointers (see the class docstring)."""
        return (self.argu(hidden_states, attention_mask), self.head_link(hidden_states, attention_mask),
                self.tail_link(hidden_states, attention_mask))
