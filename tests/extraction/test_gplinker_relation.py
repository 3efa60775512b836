"""GPLinker relation labels, decoding, heads and loss (spec §4)."""

from __future__ import annotations

import pytest
import torch

from kexue.extraction.gplinker_relation import (
    GPLinkerRelation,
    decode_relations,
    encode_relations,
    gplinker_loss,
    quintuples_to_triples,
    sparse_labels_to_logits,
)
from kexue.extraction.spans import char_offsets
from kexue.losses.multilabel import multilabel_categorical_crossentropy


def _decode(quints: list, num_predicates: int, length: int) -> set:
    labels = encode_relations([quints], num_predicates, length)
    return decode_relations(*[sparse_labels_to_logits(lab, length) for lab in labels])[0]


def test_object_before_subject_is_recovered() -> None:
    gold = {(6, 7, 1, 2, 3)}  # o_h = 2 < s_h = 6: the head-head cell (6, 2) is below the diagonal
    assert _decode(list(gold), 3, 10) == gold
    labels = encode_relations([list(gold)], 3, 10)
    scores = [sparse_labels_to_logits(lab, 10) for lab in labels]
    scores[1] = scores[1].masked_fill(torch.ones(10, 10, dtype=torch.bool).tril(-1), float("-inf"))
    assert decode_relations(*scores)[0] == set()  # a tril mask on the link heads would lose it


def test_nested_subjects_sharing_a_head_are_not_cross_assigned() -> None:
    gold = {(2, 3, 0, 7, 8), (2, 5, 0, 10, 10)}  # subjects (2,3) and (2,5) share head 2, different objects
    assert _decode(list(gold), 2, 12) == gold


def test_sparse_flattening_round_trip() -> None:
    length = 7
    entity, head, tail = encode_relations([[(1, 2, 1, 4, 6)], []], 2, length)
    assert entity.shape == (2, 2, 1) and head.shape == (2, 2, 1)
    assert divmod(int(entity[0, 0, 0]), length) == (1, 2) and divmod(int(entity[0, 1, 0]), length) == (4, 6)
    assert divmod(int(head[0, 1, 0]), length) == (1, 4) and divmod(int(tail[0, 1, 0]), length) == (2, 6)
    assert int(head[0, 0, 0]) == 0 and (entity[1] == 0).all()  # padding
    with pytest.raises(ValueError, match="CLS"):
        encode_relations([[(0, 2, 0, 3, 3)]], 1, length)
    with pytest.raises(ValueError):
        encode_relations([[(1, 2, 5, 3, 3)]], 1, length)


@pytest.mark.parametrize("efficient", [True, False])
def test_heads_masks_and_loss_equals_dense(efficient: bool) -> None:
    model = GPLinkerRelation(hidden_size=16, num_predicates=3, head_size=8, efficient=efficient)
    x = torch.randn(2, 6, 16)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]])
    ent, head, tail = model(x, mask)
    neg = torch.finfo(ent.dtype).min
    lower = torch.ones(6, 6, dtype=torch.bool).tril(-1)
    assert (ent[:, :, lower] == neg).all()
    assert (head[0][:, lower] > neg).all() and (tail[0][:, lower] > neg).all()
    assert (head[1, :, 5, :] == neg).all()
    labels = encode_relations([[(1, 2, 0, 4, 4)], [(3, 3, 2, 1, 2), (1, 1, 2, 1, 2)]], 3, 6)
    loss = gplinker_loss((ent, head, tail), labels)
    not_cls = torch.ones(36, dtype=torch.bool)
    not_cls[0] = False  # mask_zero drops the ([CLS], [CLS]) cell from the sparse loss
    dense = sum(
        multilabel_categorical_crossentropy(
            (sparse_labels_to_logits(lab, 6) > 0).float().flatten(2), out.flatten(2),
            mask=not_cls.expand(out.shape[0], out.shape[1], 36),
        ).sum(1).mean()
        for out, lab in zip((ent, head, tail), labels, strict=True)
    )
    torch.testing.assert_close(loss, dense, rtol=1e-5, atol=1e-4)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_quintuples_to_triples_uses_offsets() -> None:
    text = "《邪少兵王》是冰火未央写的"
    off = char_offsets(text)
    quints = {(2, 5, 0, 8, 11)}  # chars 1..4 and 7..10 (+1 for [CLS])
    assert quintuples_to_triples(quints, text, off, ["作者"]) == {("邪少兵王", "作者", "冰火未央")}
