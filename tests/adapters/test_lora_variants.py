"""LoRALinear in the article's W₀ + AB convention (spec training.md §6, https://kexue.fm/archives/9590)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kexue.adapters.lora_variants import LoRALinear, apply_lora_variant, merge_lora_variants
from kexue.errors import ConfigError

N, M = 6, 4   # in_features (the article's n) and out_features (m)


def _base(seed: int = 0, dtype=torch.float64) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(N, M, dtype=dtype)


def _perturb(layer: LoRALinear, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.A.add_(torch.randn(layer.A.shape, generator=g, dtype=layer.A.dtype))
        layer.B.add_(torch.randn(layer.B.shape, generator=g, dtype=layer.B.dtype))


def _grads(layer: LoRALinear, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    layer.A.grad = layer.B.grad = None
    (layer(x) * c).sum().backward()     # dL/dY = c
    return layer.A.grad, layer.B.grad


@pytest.mark.parametrize("compute", ["factored", "dense"])
@pytest.mark.parametrize("init", ["zero_B", "symmetric"])
def test_autograd_equals_closed_form_product(compute, init):
    layer = LoRALinear(_base(), r=2, init=init, compute=compute, scale=0.7,
                       generator=torch.Generator().manual_seed(0))
    _perturb(layer)
    x = torch.randn(5, N, dtype=torch.float64)
    c = torch.randn(5, M, dtype=torch.float64)
    ga, gb = _grads(layer, x, c)
    g = x.T @ c                                       # G = Xᵀ ∂L/∂Y, [n, m]
    a, b = layer.A.detach(), layer.B.detach()
    torch.testing.assert_close(ga, 0.7 * g @ b.T, rtol=0, atol=1e-10)
    torch.testing.assert_close(gb, 0.7 * a.T @ g, rtol=0, atol=1e-10)


@pytest.mark.parametrize("compute", ["factored", "dense"])
def test_additive_gradients_are_row_and_column_sums(compute):
    layer = LoRALinear(_base(), r=1, parametrization="additive", compute=compute)
    _perturb(layer)
    x = torch.randn(5, N, dtype=torch.float64)
    c = torch.randn(5, M, dtype=torch.float64)
    ga, gb = _grads(layer, x, c)
    g = x.T @ c
    torch.testing.assert_close(ga, g.sum(1, keepdim=True), rtol=0, atol=1e-10)   # A 1_{1×m}: row sums
    torch.testing.assert_close(gb, g.sum(0, keepdim=True), rtol=0, atol=1e-10)   # 1_{n×1} B: column sums


@pytest.mark.parametrize("compute", ["factored", "dense"])
def test_additive_block_gradients(compute):
    layer = LoRALinear(_base(), r=2, parametrization="additive", compute=compute)
    _perturb(layer)
    x = torch.randn(5, N, dtype=torch.float64)
    c = torch.randn(5, M, dtype=torch.float64)
    ga, gb = _grads(layer, x, c)
    g = x.T @ c
    # W = W0 + A·[I_2 I_2] + [I_2; I_2; I_2]·B  =>  ∂A[i, k] = Σ_{j ≡ k mod 2} G[i, j], ∂B[k, j] = Σ_{i ≡ k} G[i, j]
    want_a = torch.stack([sum(g[:, j] for j in range(M) if j % 2 == k) for k in range(2)], 1)
    want_b = torch.stack([sum(g[i] for i in range(N) if i % 2 == k) for k in range(2)], 0)
    torch.testing.assert_close(ga, want_a, rtol=0, atol=1e-10)
    torch.testing.assert_close(gb, want_b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("r,bound", [(1, 2), (2, 4)])
def test_additive_update_rank(r, bound):
    base = nn.Linear(12, 8, dtype=torch.float64)
    layer = LoRALinear(base, r=r, parametrization="additive")
    _perturb(layer)
    rank = int(torch.linalg.matrix_rank(layer.delta_weight()))
    assert rank == bound                    # ≤ 2r, and generic factors reach it
    assert layer.A.numel() + layer.B.numel() == r * (12 + 8)   # the parameter count of rank-r product LoRA


@pytest.mark.parametrize("compute", ["factored", "dense"])
@pytest.mark.parametrize("init,parametrization", [("zero_B", "product"), ("symmetric", "product"),
                                                  ("zero_B", "additive"), ("symmetric", "additive")])
def test_initial_output_is_the_frozen_models(init, parametrization, compute):
    base = _base(dtype=torch.float32)
    x = torch.randn(3, 7, N)
    want = base(x)
    layer = LoRALinear(base, r=2, init=init, parametrization=parametrization, compute=compute)
    if init == "symmetric":
        assert layer.B.abs().sum() > 0 and layer.A.abs().sum() > 0   # both factors non-zero at the start
    assert torch.equal(layer(x), want)
    assert not base.weight.requires_grad and not base.bias.requires_grad


@pytest.mark.parametrize("init,parametrization", [("zero_B", "product"), ("symmetric", "product"),
                                                  ("zero_B", "additive")])
def test_merged_equals_unmerged(init, parametrization):
    layer = LoRALinear(_base(dtype=torch.float32), r=2, init=init, parametrization=parametrization, scale=0.5)
    _perturb(layer)
    x = torch.randn(4, N)
    merged = layer.merged()
    assert type(merged) is nn.Linear and merged.weight.shape == (M, N)
    torch.testing.assert_close(merged(x), layer(x), rtol=0, atol=1e-6)
    # the W₀ + AB orientation: nn.Linear.weight = Wᵀ
    torch.testing.assert_close(merged.weight, layer.base.weight + layer.delta_weight().T)


def test_apply_and_merge_on_a_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(N, 8), nn.Tanh(), nn.Linear(8, M))
    names = apply_lora_variant(model, ["2"], r=2, init="symmetric")
    assert names == ["2"] and isinstance(model[2], LoRALinear)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["2.A", "2.B"]
    _perturb(model[2])
    x = torch.randn(3, N)
    before = model(x)
    merge_lora_variants(model)
    assert type(model[2]) is nn.Linear
    torch.testing.assert_close(model(x), before, rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="--lora-target"):
        apply_lora_variant(model, ["nothing"])


def test_errors():
    with pytest.raises(ConfigError, match="divide"):
        LoRALinear(nn.Linear(6, 4), r=4, parametrization="additive")
    with pytest.raises(ConfigError, match="--lora-rank"):
        LoRALinear(nn.Linear(6, 4), r=0)
    with pytest.raises(ConfigError, match="init"):
        LoRALinear(nn.Linear(6, 4), init="gaussian")
