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
    # without mask_zero the dummy class counts (as a duplicated positive) and the value changes
    other = sparse_multilabel_categorical_crossentropy(torch.tensor([1, 0, 0]), s, mask_zero=False)
    assert abs(float(other) - SPEC_VALUE) > 1e-2


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
