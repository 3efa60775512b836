"""GPLinker for joint entity–relation extraction: heads, sparse labels, loss and decoding.

Source: "GPLinker:基于GlobalPointer的实体关系联合抽取", https://kexue.fm/archives/8888.

A triple is the quintuple ``(s_h, s_t, p, o_h, o_t)`` of token indices (subject head/tail, predicate index,
object head/tail). GPLinker scores it as ``S(s_h,s_t) + S(o_h,o_t) + S(s_h,o_h | p) + S(s_t,o_t | p)``:

* an entity pointer with 2 heads (0 = subject, 1 = object), RoPE on, lower-triangle mask on;
* a head–head pointer and a tail–tail pointer with one head per predicate, **RoPE off and no lower-triangle
  mask**: these cells pair a subject token with an object token, which may come before the subject, so
  ``j < i`` cells are legal, and their score should not depend on the distance (the article's choice).

Labels are sparse (for :func:`kexue.losses.multilabel.sparse_multilabel_categorical_crossentropy` with
``mask_zero=True``): per head, the flat cell indices ``row·L + col`` of the positive cells, padded with 0.
Index 0 is the ``([CLS], [CLS])`` cell, never a real label; encoding refuses spans touching token 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from kexue.data.readers.relation import RelationExample
from kexue.extraction.spans import char_spans_to_token_spans, char_to_token_maps
from kexue.losses.multilabel import sparse_multilabel_categorical_crossentropy
from kexue.nn.global_pointer import EfficientGlobalPointer, GlobalPointer, span_indices

Quintuple = tuple[int, int, int, int, int]


def pad_cell_lists(cells: Sequence[Sequence[Sequence[int]]], length: int) -> Tensor:
    """Sparse labels ``[B, heads, K]`` (int64) from per-example, per-head lists of flat cell indices.

    Each list is deduplicated and sorted; rows are right-padded with 0 to the longest list ``K`` (>= 1).
    ``length`` is the sequence length ``L`` the flat indices ``row·L + col`` refer to (checked: < ``L²``).

    Raises:
        ValueError: an index outside ``[0, L²)``.
    """
    lists = [[sorted(set(head)) for head in example] for example in cells]
    width = max([1] + [len(h) for ex in lists for h in ex])
    heads = len(lists[0]) if lists else 0
    out = np.zeros((len(lists), heads, width), dtype=np.int64)
    for b, example in enumerate(lists):
        for h, head in enumerate(example):
            out[b, h, :len(head)] = head
    if out.size and (out.min() < 0 or out.max() >= length * length):
        raise ValueError(f"cell index outside [0, {length * length}) for L={length}")
    return torch.from_numpy(out)


def encode_relations(quintuples: Sequence[Sequence[Quintuple]], num_predicates: int, length: int
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """Sparse GPLinker labels for a batch of gold quintuples.

    Args:
        quintuples: per example, ``(s_h, s_t, p, o_h, o_t)`` token indices (``s_h <= s_t``, ``o_h <= o_t``).
        num_predicates: number of predicate heads ``P``.
        length: padded sequence length ``L``.

    Returns:
        ``(entity [B, 2, K1], head [B, P, K2], tail [B, P, K3])`` int64 flat indices ``row·L + col``, 0-padded.

    Raises:
        ValueError: an index outside ``[1, L)``, a predicate outside ``[0, P)`` or a span with tail < head.
    """
    entity, head, tail = [], [], []
    for example in quintuples:
        ent_cells: list[list[int]] = [[], []]
        head_cells: list[list[int]] = [[] for _ in range(num_predicates)]
        tail_cells: list[list[int]] = [[] for _ in range(num_predicates)]
        for sh, st, p, oh, ot in example:
            if not (0 < sh <= st < length and 0 < oh <= ot < length and 0 <= p < num_predicates):
                raise ValueError(f"quintuple {(sh, st, p, oh, ot)} invalid for L={length}, P={num_predicates} "
                                 "(token 0 is [CLS] and cannot be part of a span)")
            ent_cells[0].append(sh * length + st)
            ent_cells[1].append(oh * length + ot)
            head_cells[p].append(sh * length + oh)
            tail_cells[p].append(st * length + ot)
        entity.append(ent_cells)
        head.append(head_cells)
        tail.append(tail_cells)
    return pad_cell_lists(entity, length), pad_cell_lists(head, length), pad_cell_lists(tail, length)


def sparse_labels_to_logits(labels: Tensor, length: int, value: float = 10.0,
                            dtype: torch.dtype = torch.float32) -> Tensor:
    """Dense scores ``[B, heads, L, L]``: ``+value`` at labelled cells, ``-value`` elsewhere (oracle decoding).

    ``labels`` ``[B, heads, K]`` are flat indices with 0 as padding (cell 0 stays negative). A small
    ``dtype`` (``torch.int8`` with ``value=1``) keeps oracle checks over many predicates cheap.
    """
    batch, heads, _ = labels.shape
    flat = torch.full((batch, heads, length * length), -value, dtype=dtype)
    flat.scatter_(2, labels, torch.full(labels.shape, value, dtype=dtype))
    flat[..., 0] = -value
    return flat.view(batch, heads, length, length)


def decode_relations(entity_logits: Tensor, head_logits: Tensor, tail_logits: Tensor, threshold: float = 0.0,
                     special_tokens_mask: Tensor | None = None) -> list[set[Quintuple]]:
    """Decode GPLinker scores into quintuples ``(s_h, s_t, p, o_h, o_t)``.

    Subjects ``{(i, j): S_ent[0, i, j] > threshold}``, objects likewise from head 1; for every subject × object
    pair the predicates are ``{p: S_hh[p, s_h, o_h] > threshold} ∩ {p: S_tt[p, s_t, o_t] > threshold}``
    (vectorized gathers; the tail–tail test stops nested subjects sharing a head from cross-assigning).

    Args:
        entity_logits: ``[B, 2, L, L]``; head_logits, tail_logits: ``[B, P, L, L]``.
        threshold: score threshold (0 on raw logits).
        special_tokens_mask: ``[B, L]``, True at ``[CLS]``/``[SEP]``/padding tokens that cannot start or end
            an entity.

    Returns:
        One set of quintuples per example.

    Source: https://kexue.fm/archives/8888.
    """
    rows = span_indices(entity_logits, threshold, special_tokens_mask)
    out: list[set[Quintuple]] = []
    for b in range(entity_logits.shape[0]):
        mine = rows[rows[:, 0] == b]
        subjects = mine[mine[:, 1] == 0][:, 2:]
        objects = mine[mine[:, 1] == 1][:, 2:]
        if len(subjects) == 0 or len(objects) == 0:
            out.append(set())
            continue
        hh = head_logits[b][:, subjects[:, 0, None], objects[None, :, 0]] > threshold  # [P, ns, no]
        tt = tail_logits[b][:, subjects[:, 1, None], objects[None, :, 1]] > threshold
        p, si, oi = torch.nonzero(hh & tt, as_tuple=True)
        quint = torch.stack([subjects[si, 0], subjects[si, 1], p, objects[oi, 0], objects[oi, 1]], dim=1)
        out.append({tuple(q) for q in quint.tolist()})
    return out


def example_quintuples(example: RelationExample, offsets: np.ndarray, predicate_index: dict[str, int]
                       ) -> tuple[list[Quintuple], list[int]]:
    """Token quintuples of a :class:`RelationExample` under a tokenisation's ``offset_mapping`` ``[T, 2]``.

    Returns:
        ``(quintuples, dropped)``: ``dropped`` lists indices of triples whose subject or object boundaries do
        not fall on token boundaries (or are truncated away); the caller reports them.

    Raises:
        KeyError: a predicate missing from ``predicate_index``.
    """
    if not example.triples:
        return [], []
    start_map, end_map = char_to_token_maps(offsets, len(example.text))
    chars = np.array([[t.subject_start, t.subject_end, t.object_start, t.object_end] for t in example.triples])
    subj = char_spans_to_token_spans(chars[:, :2], start_map, end_map)
    obj = char_spans_to_token_spans(chars[:, 2:], start_map, end_map)
    quints, dropped = [], []
    for n, triple in enumerate(example.triples):
        if subj[n, 0] < 0 or obj[n, 0] < 0:
            dropped.append(n)
            continue
        quints.append((int(subj[n, 0]), int(subj[n, 1]), predicate_index[triple.predicate],
                       int(obj[n, 0]), int(obj[n, 1])))
    return quints, dropped


def quintuples_to_triples(quintuples: set[Quintuple], text: str, offsets: np.ndarray,
                          predicates: Sequence[str]) -> set[tuple[str, str, str]]:
    """``(subject_text, predicate, object_text)`` strings of decoded quintuples (``offsets`` ``[T, 2]``)."""
    off = np.asarray(offsets)
    return {(text[off[sh, 0]:off[st, 1]], predicates[p], text[off[oh, 0]:off[ot, 1]])
            for sh, st, p, oh, ot in quintuples}


class GPLinkerRelation(nn.Module):
    """The three GPLinker pointers over encoder states.

    Args:
        hidden_size: encoder width ``H``.
        num_predicates: number of predicates ``P``.
        head_size: ``d`` (64).
        efficient: Efficient GlobalPointer heads (the article's default, ≈300K vs ≈10M head parameters).

    Forward: ``hidden_states`` ``[B, L, H]``, ``attention_mask`` ``[B, L]`` ->
    ``(entity [B, 2, L, L], head [B, P, L, L], tail [B, P, L, L])``.

    Source: https://kexue.fm/archives/8888.
    """

    def __init__(self, hidden_size: int, num_predicates: int, head_size: int = 64, efficient: bool = True) -> None:
        super().__init__()
        pointer = EfficientGlobalPointer if efficient else GlobalPointer
        self.entity = pointer(hidden_size, 2, head_size, rope=True, tril_mask=True)
        self.head = pointer(hidden_size, num_predicates, head_size, rope=False, tril_mask=False)
        self.tail = pointer(hidden_size, num_predicates, head_size, rope=False, tril_mask=False)

    def forward(self, hidden_states: Tensor, attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Scores of the entity, head–head and tail–tail pointers (see the class docstring)."""
        return (self.entity(hidden_states, attention_mask), self.head(hidden_states, attention_mask),
                self.tail(hidden_states, attention_mask))


def gplinker_loss(outputs: Sequence[Tensor], labels: Sequence[Tensor]) -> Tensor:
    """GPLinker training loss: sparse multi-label CE (``mask_zero=True``) per head, summed over heads and
    outputs, averaged over the batch.

    Args:
        outputs: score tensors ``[B, heads, L, L]``.
        labels: matching sparse labels ``[B, heads, K]`` (flat indices, 0-padded).

    Source: https://kexue.fm/archives/8888.
    """
    total = outputs[0].new_zeros(())
    for logits, label in zip(outputs, labels, strict=True):
        flat = logits.flatten(2)
        total = total + sparse_multilabel_categorical_crossentropy(label, flat, mask_zero=True).sum(1).mean()
    return total
