"""Multi-label categorical cross-entropy: spec §1 values and properties."""

from __future__ import annotations

import math

import pytest
import torch

from kexue.losses.multilabel import (
    MultilabelCategoricalCrossentropy,
    multilabel_categorical_crossentropy,
    sparse_multilabel_categorical_crossentropy,
)

SPEC_VALUE = 1.2310586  # log(1+e^-2) + log(1+e^-1+e^0.5), spec §1 property 1


def test_hand_value_dense_sparse_and_formula() -> None:
    s = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    formula = math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1) + math.exp(0.5))
    assert formula == pytest.approx(SPEC_VALUE, abs=1e-7)
    dense = multilabel_categorical_crossentropy(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), s)
    sparse = sparse_multilabel_categorical_crossentropy(torch.tensor([0]), s)
    assert float(dense) == pytest.approx(SPEC_VALUE, abs=1e-6)
    assert float(sparse) == pytest.approx(SPEC_VALUE, abs=1e-6)


def test_mask_zero_padding_class() -> None:
    # prepend a dummy class 0 (score 9.9); the real positive is now index 1; pad the list with 0s
    s = torch.tensor([9.9, 2.0, -1.0, 0.5], dtype=torch.float64)
    loss = sparse_multilabel_categorical_crossentropy(torch.tensor([1, 0, 0]), s, mask_zero=True)
    assert float(loss) == pytest.approx(SPEC_VALUE, abs=1e-6)
    # without mask_zero the dummy class is a real positive, listed twice: twice in the positive term, gone from
    # the negative term
    other = sparse_multilabel_categorical_crossentropy(torch.tensor([1, 0, 0]), s, mask_zero=False)
    hand = math.log(1 + math.exp(-2) + 2 * math.exp(-9.9)) + math.log(1 + math.exp(-1) + math.exp(0.5))
    assert float(other) == pytest.approx(hand, abs=1e-12)
    assert abs(float(other) - SPEC_VALUE) > 5e-5


def test_gradient_signs() -> None:
    s = torch.randn(20, dtype=torch.float64, requires_grad=True)
    y = torch.zeros(20, dtype=torch.float64)
    y[[2, 5, 11]] = 1
    multilabel_categorical_crossentropy(y, s).backward()
    assert (s.grad[y == 1] < 0).all() and (s.grad[y == 0] > 0).all()


@pytest.mark.parametrize("pad", [False, True])
def test_sparse_equals_dense_random(pad: bool) -> None:
    """n = 100, 1-5 positives; with ``pad`` class 0 is padding (mask_zero) and the lists are 0-padded."""
    gen = torch.Generator().manual_seed(1)
    batch, n = 16, 100
    scores = torch.randn(batch, n, generator=gen, dtype=torch.float64) * 3
    y_dense = torch.zeros(batch, n, dtype=torch.float64)
    idx = torch.zeros(batch, 5, dtype=torch.long)
    low = 1 if pad else 0
    for b in range(batch):
        k = int(torch.randint(1, 6, (1,), generator=gen)) if pad else 5
        chosen = torch.randperm(n - low, generator=gen)[:k] + low
        y_dense[b, chosen] = 1
        idx[b, :k] = chosen
    if pad:
        dense = multilabel_categorical_crossentropy(y_dense[:, 1:], scores[:, 1:])
    else:
        dense = multilabel_categorical_crossentropy(y_dense, scores)
    sparse = sparse_multilabel_categorical_crossentropy(idx, scores, mask_zero=pad)
    torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=0)
    # float32 too (the training dtype)
    sparse32 = sparse_multilabel_categorical_crossentropy(idx, scores.float(), mask_zero=pad)
    torch.testing.assert_close(sparse32, dense.float(), atol=1e-5, rtol=1e-5)


def test_masked_cells_contribute_nothing() -> None:
    s = torch.tensor([2.0, -1.0, 0.5, 0.0, 0.0])
    s_masked = s.clone()
    s_masked[3] = torch.finfo(s.dtype).min
    s_masked[4] = float("-inf")
    y = torch.tensor([1.0, 0, 0, 0, 0])
    dense = multilabel_categorical_crossentropy(y, s_masked)
    sparse = sparse_multilabel_categorical_crossentropy(torch.tensor([0]), s_masked)
    assert torch.isfinite(dense) and torch.isfinite(sparse)
    assert float(dense) == pytest.approx(SPEC_VALUE, abs=1e-6)
    assert float(sparse) == pytest.approx(SPEC_VALUE, abs=1e-6)
    # explicit mask argument on unmasked scores gives the same
    mask = torch.tensor([True, True, True, False, False])
    assert float(multilabel_categorical_crossentropy(y, s, mask=mask)) == pytest.approx(SPEC_VALUE, abs=1e-6)


def test_all_negative_row_is_finite_with_finite_grad() -> None:
    s = torch.randn(2, 30, requires_grad=True)
    loss = multilabel_categorical_crossentropy(torch.zeros(2, 30), s).sum()
    loss = loss + sparse_multilabel_categorical_crossentropy(torch.zeros(2, 3, dtype=torch.long), s,
                                                             mask_zero=True).sum()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()


def test_module_reductions_and_errors() -> None:
    s = torch.tensor([[2.0, -1.0, 0.5], [2.0, -1.0, 0.5]])
    y = torch.tensor([[1.0, 0, 0], [1.0, 0, 0]])
    assert float(MultilabelCategoricalCrossentropy()(y, s)) == pytest.approx(SPEC_VALUE, abs=1e-6)
    assert float(MultilabelCategoricalCrossentropy(reduction="sum")(y, s)) == pytest.approx(2 * SPEC_VALUE, abs=1e-5)
    sparse = MultilabelCategoricalCrossentropy(sparse=True, reduction="none")(torch.tensor([[0], [0]]), s)
    assert sparse.shape == (2,)
    with pytest.raises(ValueError, match="reduction"):
        MultilabelCategoricalCrossentropy(reduction="avg")
    with pytest.raises(ValueError, match="shape"):
        multilabel_categorical_crossentropy(torch.zeros(3), torch.zeros(4))


def _dense_formula_float64(scores: torch.Tensor, positives: list[int]) -> torch.Tensor:
    """Brute force of spec §1's ``log(1 + Σ_P e^{-s}) + log(1 + Σ_N e^{s})`` in float64, one term per class."""
    s = scores.double()
    pos_terms = [torch.exp(-s[j]) for j in positives]
    neg_terms = [torch.exp(s[i]) for i in range(s.numel()) if i not in positives]
    return torch.log(1 + torch.stack(pos_terms).sum()) + torch.log(1 + torch.stack(neg_terms).sum())


@pytest.mark.parametrize("s_pos", [15.0, 17.0, 20.0, 30.0])
def test_sparse_dominant_positive_value_and_gradient(s_pos: float) -> None:
    """Spec §1 property 6: one positive among 999 negatives at -5, fp32; the clipped a + log(1 - e^{b-a}) form
    returned 0.8819 with d/ds_pos = +1.0 at s_pos = 17 (exact 2.04527, -4e-8)."""
    n = 1000
    base = torch.full((n,), -5.0)
    base[0] = s_pos
    # the exact value: log(1 + e^{-s_pos}) + log(1 + 999 e^{-5}); ≈ 2.04527 for every s_pos listed
    exact = math.log1p(math.exp(-s_pos)) + math.log1p(999 * math.exp(-5.0))
    assert exact == pytest.approx(2.04527, abs=1e-5)
    reference = base.double().requires_grad_(True)
    _dense_formula_float64(reference, [0]).backward()

    sparse_in = base.clone().requires_grad_(True)
    sparse = sparse_multilabel_categorical_crossentropy(torch.tensor([0]), sparse_in)
    sparse.backward()
    dense_in = base.clone().requires_grad_(True)
    y = torch.zeros(n)
    y[0] = 1
    dense = multilabel_categorical_crossentropy(y, dense_in)
    dense.backward()
    assert float(sparse.detach()) == pytest.approx(exact, abs=1e-5)
    assert float(dense.detach()) == pytest.approx(exact, abs=1e-5)
    assert float(sparse_in.grad[0]) < 0 and float(dense_in.grad[0]) < 0
    torch.testing.assert_close(sparse_in.grad.double(), reference.grad, atol=1e-7, rtol=1e-5)
    torch.testing.assert_close(dense_in.grad.double(), reference.grad, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("mask_zero", [False, True])
def test_sparse_fp32_matches_float64_brute_force_on_large_logits(mask_zero: bool) -> None:
    """Value and gradient in fp32 against a float64 brute force, with positives far above the negatives."""
    gen = torch.Generator().manual_seed(7)
    rows, n = 6, 300
    scores = torch.randn(rows, n, generator=gen) * 4 - 6
    labels = torch.zeros(rows, 4, dtype=torch.long)
    positive_sets = []
    for r in range(rows):
        k = 1 + r % 4
        chosen = (torch.randperm(n - 1, generator=gen)[:k] + 1).tolist()
        positive_sets.append(chosen)
        labels[r, :k] = torch.tensor(chosen)
        if not mask_zero:
            labels[r, k:] = chosen[0]  # no padding class: repeat a positive (its -inf scatter is idempotent)
        scores[r, chosen] = torch.tensor([12.0, 19.0, 25.0, 40.0][:k])
    if not mask_zero:
        # the positive term counts a repeated index again: keep the brute force equal by using one index per row
        labels = labels[:, :1]
        positive_sets = [p[:1] for p in positive_sets]
    scores_in = scores.clone().requires_grad_(True)
    loss = sparse_multilabel_categorical_crossentropy(labels, scores_in, mask_zero=mask_zero)
    loss.sum().backward()
    for r in range(rows):
        ref_in = scores[r].double().requires_grad_(True)
        classes = list(range(1, n)) if mask_zero else list(range(n))
        sub = ref_in[classes]
        ref = _dense_formula_float64(sub, [classes.index(j) for j in positive_sets[r]])
        ref.backward()
        assert float(loss[r].detach()) == pytest.approx(float(ref.detach()), rel=1e-6, abs=1e-6)
        torch.testing.assert_close(scores_in.grad[r, classes].double(), ref_in.grad[classes], atol=1e-7, rtol=1e-5)
        if mask_zero:
            assert float(scores_in.grad[r, 0]) == 0.0


def test_dense_soft_labels_use_the_soft_form() -> None:
    """Spec §1 property 7: y = [0.7, 0.2, 0], s = [1, 0.5, -1] -> 1.574661, never a silent 0.5 threshold."""
    y = torch.tensor([0.7, 0.2, 0.0], dtype=torch.float64)
    s = torch.tensor([1.0, 0.5, -1.0], dtype=torch.float64)
    # hand-expanded soft form: logsumexp([s + log(1-y), 0]) + logsumexp([-s + log y, 0])
    neg = math.log(1 + 0.3 * math.exp(1.0) + 0.8 * math.exp(0.5) + 1.0 * math.exp(-1.0))
    pos = math.log(1 + 0.7 * math.exp(-1.0) + 0.2 * math.exp(-0.5))
    assert neg + pos == pytest.approx(1.574661, abs=1e-6)
    assert float(multilabel_categorical_crossentropy(y, s)) == pytest.approx(1.574661, abs=1e-6)
    assert float(multilabel_categorical_crossentropy(y.float(), s.float())) == pytest.approx(1.574661, abs=1e-6)


def test_dense_soft_labels_gradient_matches_finite_difference() -> None:
    gen = torch.Generator().manual_seed(3)
    y = torch.rand(4, 9, generator=gen, dtype=torch.float64)
    y[:, 0] = 0.0
    y[:, 1] = 1.0
    s = (torch.randn(4, 9, generator=gen, dtype=torch.float64) * 2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: multilabel_categorical_crossentropy(y, x), (s,))


def test_dense_masked_cells_with_soft_form_stay_finite() -> None:
    """A -inf cell with label 0 must not produce NaN (−(−inf) + log 0) in the positive term, nor in the grad."""
    s = torch.tensor([2.0, -1.0, 0.5, float("-inf")], requires_grad=True)
    y = torch.tensor([1.0, 0.0, 0.0, 0.0])
    loss = multilabel_categorical_crossentropy(y, s)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(SPEC_VALUE, abs=1e-6)
    assert torch.isfinite(s.grad).all() and float(s.grad[3]) == 0.0


def test_dense_labels_outside_unit_interval_raise() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        multilabel_categorical_crossentropy(torch.tensor([1.5, 0.0]), torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        multilabel_categorical_crossentropy(torch.tensor([-0.1, 0.0]), torch.tensor([1.0, 2.0]))
