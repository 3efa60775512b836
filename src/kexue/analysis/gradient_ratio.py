"""Input- vs parameter-gradient norms of a trained model, per example: the diagnostic of the gradient-penalty
inequality article (https://kexue.fm/archives/8796).

The inequality (:mod:`kexue.analysis.gradient_penalty`) bounds ``‖∇_x f‖²`` times a bracket of norms by
``‖∇_θ f‖²``; Su argues that in non-collapsing training the bracket stays roughly stable, so the two penalties are
roughly proportional throughout training. :func:`example_gradient_norms` measures both norms per example (the
input being the word-embedding outputs, as for kexue's input gradient penalty) so that the ratio
``‖∇_x f‖ / ‖∇_θ f‖`` can be tracked over a run's checkpoints (``kexue analyze gradient-penalty``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from kexue.errors import ConfigError
from kexue.regularizers.gradient_penalty import capture_embedding_outputs


@dataclass
class GradientNorms:
    """Summary of one model state: ``step``; mean per-example ``input_norm`` ``‖∇_x f‖`` and ``param_norm``
    ``‖∇_θ f‖``; ``ratio`` (mean of the per-example ratios) and its standard deviation over examples;
    ``loss`` (mean per-example loss); ``examples`` (count)."""

    step: int
    input_norm: float
    param_norm: float
    ratio: float
    ratio_std: float
    loss: float
    examples: int

    def as_dict(self) -> dict:
        """A JSON-ready dictionary."""
        return asdict(self)


def example_gradient_norms(model: nn.Module, loss_fn: Callable[[nn.Module, dict[str, Tensor]], Tensor],
                           batches: Sequence[dict[str, Tensor]],
                           params: Sequence[nn.Parameter] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-example ``‖∇_x l‖`` (x = word-embedding outputs ``[1, L, H]``), ``‖∇_θ l‖`` and the loss ``l``.

    Args:
        model: a module with ``get_input_embeddings()`` (or an ``nn.Embedding`` inside, see
            :func:`kexue.regularizers.capture_embedding_outputs`), put in eval mode by the caller.
        loss_fn: ``loss_fn(model, batch) -> scalar`` for one example's batch.
        batches: one-example batches (tensors ``[1, ...]``).
        params: θ (default: every parameter with ``requires_grad``).
    Returns:
        three float64 arrays ``[len(batches)]``.
    Raises:
        ConfigError: no batches, no parameters, or a model whose embeddings cannot be found.
    """
    if not batches:
        raise ConfigError("--examples: expected at least one example")
    params = list(params if params is not None else (p for p in model.parameters() if p.requires_grad))
    if not params:
        raise ConfigError("example_gradient_norms: the model has no trainable parameters")
    inputs, weights, losses = [], [], []
    for batch in batches:
        with capture_embedding_outputs(model) as captured:
            loss = loss_fn(model, batch)
        grads = torch.autograd.grad(loss, list(captured.outputs) + params, allow_unused=True)
        n_in = len(captured.outputs)
        inputs.append(float(sum(g.double().pow(2).sum() for g in grads[:n_in] if g is not None)) ** 0.5)
        weights.append(float(sum(g.double().pow(2).sum() for g in grads[n_in:] if g is not None)) ** 0.5)
        losses.append(float(loss.detach()))
    return np.array(inputs), np.array(weights), np.array(losses)


def summarize(step: int, input_norms: np.ndarray, param_norms: np.ndarray, losses: np.ndarray) -> GradientNorms:
    """One :class:`GradientNorms` row from per-example arrays (examples with ``‖∇_θ l‖ = 0`` are skipped in the
    ratio)."""
    keep = param_norms > 0
    ratios = input_norms[keep] / param_norms[keep]
    return GradientNorms(step=int(step), input_norm=float(input_norms.mean()), param_norm=float(param_norms.mean()),
                         ratio=float(ratios.mean()) if ratios.size else float("nan"),
                         ratio_std=float(ratios.std()) if ratios.size else float("nan"),
                         loss=float(losses.mean()), examples=int(input_norms.size))


def plot_gradient_ratio(rows: Sequence[GradientNorms], path: str | Path, title: str = "") -> Path:
    """Plot the two mean gradient norms (log scale) and their ratio (± one std over examples) against the
    checkpoint step; returns ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    steps = [r.step for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    ax1.plot(steps, [r.input_norm for r in rows], "o-", label="‖∇ₓ l‖ (embedding outputs)")
    ax1.plot(steps, [r.param_norm for r in rows], "s-", label="‖∇_θ l‖ (all parameters)")
    ax1.set_yscale("log")
    ax1.set_xlabel("step")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ratio = np.array([r.ratio for r in rows])
    std = np.array([r.ratio_std for r in rows])
    ax2.plot(steps, ratio, "o-", color="C2")
    ax2.fill_between(steps, ratio - std, ratio + std, color="C2", alpha=0.2)
    ax2.set_xlabel("step")
    ax2.set_ylabel("mean ‖∇ₓ l‖ / ‖∇_θ l‖ per example")
    ax2.grid(alpha=0.3)
    fig.suptitle(title or "input vs parameter gradient norms over checkpoints (kexue.fm/archives/8796)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
