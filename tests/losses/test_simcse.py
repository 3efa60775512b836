"""Unsupervised SimCSE loss (spec §3): the hand value, brute-force double loops for both negative conventions,
identical orthonormal views, and dropout views of a real encoder."""

from __future__ import annotations

import math

import pytest
import torch

from kexue.losses.simcse import SimCSELoss, simcse_loss


def test_spec_hand_value_scale_20():
    # spec §3 property 4: rows [(1,0),(0.8,0.6),(0,1),(0.6,0.8)] interleaved [h0_1, h1_1, h0_2, h1_2], targets [1,0,3,2]
    emb0 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    emb1 = torch.tensor([[0.8, 0.6], [0.6, 0.8]], dtype=torch.float64)
    loss = simcse_loss(emb0, emb1, scale=20.0, negatives="with-same-view")
    assert abs(loss.item() - 1.629410) < 5e-7


def test_hand_value_by_explicit_rows():
    # the same number written out: row 0 = (1,0) sees 0.8 (target), 0, 0.6
    rows = [[0.8, 0.0, 0.6], [0.8, 0.6, 0.96], [0.8, 0.0, 0.6], [0.8, 0.6, 0.96]]  # target first
    expected = sum(-20 * r[0] + math.log(sum(math.exp(20 * c) for c in r)) for r in rows) / 4
    emb0 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    emb1 = torch.tensor([[0.8, 0.6], [0.6, 0.8]], dtype=torch.float64)
    assert abs(simcse_loss(emb0, emb1, negatives="with-same-view").item() - expected) < 1e-12
    assert abs(expected - 1.629410) < 5e-7


def _cos(u, v):
    return float(u @ v / (u.norm() * v.norm()))


def _brute_cross_view(h0, h1, s):
    total = 0.0
    for i in range(len(h0)):
        denom = sum(math.exp(s * _cos(h0[i], h1[j])) for j in range(len(h1)))
        total += -math.log(math.exp(s * _cos(h0[i], h1[i])) / denom)
    return total / len(h0)


def _brute_with_same_view(h0, h1, s):
    views = (h0, h1)
    total = 0.0
    for i in range(len(h0)):
        for a in (0, 1):
            anchor, partner = views[a][i], views[1 - a][i]
            denom = sum(math.exp(s * _cos(anchor, views[a][j])) for j in range(len(h0)) if j != i)
            denom += sum(math.exp(s * _cos(anchor, views[1 - a][j])) for j in range(len(h0)))
            total += -math.log(math.exp(s * _cos(anchor, partner)) / denom)
    return total / (2 * len(h0))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scale", [20.0, 3.0])
def test_both_conventions_equal_brute_force(seed, scale):
    g = torch.Generator().manual_seed(seed)
    h0 = torch.randn(6, 5, generator=g, dtype=torch.float64)
    h1 = h0 + 0.5 * torch.randn(6, 5, generator=g, dtype=torch.float64)
    ours_cv = simcse_loss(h0, h1, scale, "cross-view").item()
    ours_sv = simcse_loss(h0, h1, scale, "with-same-view").item()
    assert abs(ours_cv - _brute_cross_view(h0, h1, scale)) < 1e-10
    assert abs(ours_sv - _brute_with_same_view(h0, h1, scale)) < 1e-10
    assert abs(ours_cv - ours_sv) > 1e-6  # the conventions really differ


def test_identical_orthonormal_views_give_almost_zero():
    n = 5
    q, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))
    h = q[:n] * torch.arange(1, n + 1, dtype=torch.float64)[:, None]  # orthogonal rows, any norms
    same = simcse_loss(h, h.clone(), 20.0, "with-same-view").item()
    cross = simcse_loss(h, h.clone(), 20.0, "cross-view").item()
    assert abs(same - math.log1p((2 * n - 2) * math.exp(-20))) < 1e-12
    assert abs(cross - math.log1p((n - 1) * math.exp(-20))) < 1e-12
    assert same < 1e-7


def test_module_and_errors():
    h0, h1 = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.equal(SimCSELoss(20.0, "cross-view")(h0, h1), simcse_loss(h0, h1))
    with pytest.raises(ValueError, match="--negatives"):
        simcse_loss(h0, h1, negatives="both")
    with pytest.raises(ValueError, match="one shape"):
        simcse_loss(h0, h1[:3])
    with pytest.raises(ValueError, match="at least 2"):
        simcse_loss(h0[:1], h1[:1])
    half = simcse_loss(h0.bfloat16(), h1.bfloat16())
    assert half.dtype == torch.float32 and torch.isfinite(half)


def test_gradient_reaches_both_views():
    h0 = torch.randn(4, 3, requires_grad=True)
    h1 = torch.randn(4, 3, requires_grad=True)
    simcse_loss(h0, h1, negatives="with-same-view").backward()
    assert h0.grad.abs().sum() > 0 and h1.grad.abs().sum() > 0


def test_train_passes_differ_eval_passes_equal(tiny_bert_dir):
    from kexue.data.collate import pad_batch
    from kexue.embeddings import SentenceEncoder
    from kexue.tasks.simcse import set_dropout

    encoder = SentenceEncoder.from_pretrained(tiny_bert_dir)
    set_dropout(encoder, 0.3)
    batch = pad_batch(encoder.tokenize(["A man plays a flute.", "Dogs run outside.", "The cat sleeps."]),
                      pad_token_id=encoder.tokenizer.pad_token_id)
    encoder.train()
    a, b = encoder(**batch), encoder(**batch)
    assert (a - b).abs().max() > 1e-3
    encoder.eval()
    with torch.no_grad():
        assert torch.equal(encoder(**batch), encoder(**batch))
