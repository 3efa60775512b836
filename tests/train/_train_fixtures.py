"""Tiny models and data shared by the Trainer tests (importable as ``_train_fixtures``)."""

from __future__ import annotations

import torch
from torch import nn


class TinyMLP(nn.Module):
    """Linear -> LayerNorm -> GELU -> Dropout -> Linear regression model on 4 features."""

    def __init__(self, dropout: float = 0.1, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.GELU(), nn.Dropout(dropout), nn.Linear(8, 1))
        self.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def make_data(n: int = 40, seed: int = 1, dtype: torch.dtype = torch.float32) -> list[dict[str, torch.Tensor]]:
    """``n`` examples ``{"x": [4], "y": []}`` with y a noisy linear function of x."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g, dtype=dtype)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=dtype) + 0.1 * torch.randn(n, generator=g, dtype=dtype)
    return [{"x": x[i], "y": y[i]} for i in range(n)]


def mse_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean squared error of the model on a collated batch."""
    return torch.nn.functional.mse_loss(model(batch["x"]), batch["y"])


def make_eval(data: list[dict[str, torch.Tensor]]):
    """An ``evaluate`` function returning ``{"neg_mse": -MSE}`` on ``data``."""
    x = torch.stack([d["x"] for d in data])
    y = torch.stack([d["y"] for d in data])

    def evaluate(model: nn.Module) -> dict[str, float]:
        return {"neg_mse": -float(torch.nn.functional.mse_loss(model(x), y))}

    return evaluate
