"""CoSENT loss: spec §1 hand values and properties (https://kexue.fm/archives/8847)."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from kexue.losses.cosent import CoSENTLoss, cosent_loss, cosent_loss_from_embeddings


def _brute(cos, labels, scale=20.0):
    """The definition, summed pair by pair in Python floats."""
    total = 1.0
    for i, j in itertools.product(range(len(cos)), repeat=2):
        if labels[i] > labels[j]:
            total += math.exp(scale * (cos[j] - cos[i]))
    return math.log(total)


@pytest.mark.parametrize(("labels", "cos", "expected"), [
    ([1, 0, 0], [0.5, 0.4, 0.6], 2.142932),       # log(1 + e^-2 + e^2)
    ([2, 1, 0], [0.9, 0.5, 0.7], 4.018485),       # log(1 + e^-8 + e^-4 + e^4)
    ([1, 0], [0.6, 0.5], 0.126928),               # log(1 + e^-2)
])
def test_spec_hand_values(labels, cos, expected):
    loss = cosent_loss(torch.tensor(cos), torch.tensor(labels))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_matches_definition_on_random_batches():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        n = int(torch.randint(2, 12, (1,), generator=g))
        cos = torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1
        labels = torch.randint(0, 4, (n,), generator=g)
        got = cosent_loss(cos, labels, scale=7.0).item()
        assert got == pytest.approx(_brute(cos.tolist(), labels.tolist(), 7.0), rel=1e-9, abs=1e-12)


def test_two_pairs_margin_formula():
    for m in (-0.3, 0.0, 0.05, 0.4):
        loss = cosent_loss(torch.tensor([0.5 + m, 0.5], dtype=torch.float64), torch.tensor([1, 0]))
        assert loss.item() == pytest.approx(math.log1p(math.exp(-20 * m)), rel=1e-9)


def test_zero_loss_and_gradient_when_labels_tie():
    cos = torch.tensor([0.3, -0.2, 0.9], requires_grad=True)
    loss = cosent_loss(cos, torch.tensor([2.5, 2.5, 2.5]))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(cos.grad, torch.zeros(3))


def test_invariances():
    g = torch.Generator().manual_seed(1)
    cos = torch.rand(9, generator=g) * 2 - 1
    labels = torch.tensor([0, 1, 2, 2, 0, 1, 3, 3, 1])
    base = cosent_loss(cos, labels)
    relabelled = torch.tensor([-5.0, 0.1, 0.2, 0.2, -5.0, 0.1, 40.0, 40.0, 0.1])  # strictly increasing map
    assert torch.allclose(cosent_loss(cos, relabelled), base)
    perm = torch.randperm(9, generator=g)
    assert torch.allclose(cosent_loss(cos[perm], labels[perm]), base)
    u, v = torch.randn(9, 5, generator=g), torch.randn(9, 5, generator=g)
    scales = torch.rand(9, 1, generator=g) + 0.1
    assert torch.allclose(cosent_loss_from_embeddings(u * scales, v, labels),
                          cosent_loss_from_embeddings(u, v, labels), atol=1e-6)


def test_gradient_signs_on_violated_pair():
    cos = torch.tensor([0.2, 0.8], requires_grad=True)       # label 1 pair has the smaller cosine
    cosent_loss(cos, torch.tensor([1, 0])).backward()
    assert cos.grad[0] < 0 < cos.grad[1]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_finite_in_half_precision(dtype):
    # scale * 2 = 40 -> e^40 overflows fp16 (max 65504); a -1e12 mask would overflow too
    cos = torch.tensor([-1.0, 1.0, 0.99, -0.98], dtype=dtype, requires_grad=True)
    labels = torch.tensor([1, 0, 0, 1])
    loss = cosent_loss(cos, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(cos.grad).all()
    assert loss.item() == pytest.approx(_brute(cos.detach().float().tolist(), labels.tolist()), rel=1e-5)
    u = torch.randn(4, 8).to(dtype)
    assert torch.isfinite(cosent_loss_from_embeddings(u, -u, labels))


def test_interleaved_reference_batch_equals_separate_tensors():
    g = torch.Generator().manual_seed(2)
    u, v = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    labels = torch.tensor([0, 1, 1, 0, 2, 1])
    interleaved = torch.stack([u, v], dim=1).reshape(12, 4)   # [a1, b1, a2, b2, ...]
    normed = F.normalize(interleaved, dim=-1)
    cos = (normed[0::2] * normed[1::2]).sum(-1)
    assert torch.allclose(cosent_loss(cos, labels), CoSENTLoss()(u, v, labels), atol=1e-6)


def test_parity_with_sentence_transformers():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sentence_transformers.sentence_transformer.losses import CoSENTLoss as STCoSENT

    reference = STCoSENT(torch.nn.Identity(), scale=20.0)
    g = torch.Generator().manual_seed(3)
    u, v = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)
    labels = torch.randint(0, 6, (16,), generator=g).float()
    expected = reference.compute_loss_from_embeddings([u, v], labels)
    assert torch.allclose(cosent_loss_from_embeddings(u, v, labels), expected, atol=1e-5)


def test_shape_errors():
    with pytest.raises(ValueError, match="cos_sim"):
        cosent_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="emb_a"):
        cosent_loss_from_embeddings(torch.zeros(3, 2), torch.zeros(3, 4), torch.zeros(3))
