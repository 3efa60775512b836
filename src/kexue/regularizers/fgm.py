"""FGM adversarial training on the word-embedding matrix.

FGM takes one normalised ascent step on the input embeddings, ``Δ = ε·∇L/‖∇L‖`` (or ``ε·sign(∇L)``), and trains
on the perturbed loss. Su's NLP implementation perturbs the **embedding matrix** E: ``G = ∂L/∂E`` (rows of repeated
tokens summed, one global Frobenius norm for the batch), ``δ = ε G/(‖G‖_F + 1e-8)``, ``E ← E + δ``, run the normal
train step, remove δ. Tokens absent from the batch get ``δ = 0``; all occurrences of a token share δ.

Two gradient recipes (``loss_mode``):

* ``"adv_only"`` (Su's Keras code): the parameter gradient comes from the perturbed loss only; δ is computed with
  ``torch.autograd.grad`` so the clean loss leaves no trace in ``.grad``;
* ``"clean_plus_adv"`` (the common PyTorch recipe): ``clean_loss.backward()`` first, then the perturbed backward
  adds to it, so ``.grad`` holds the sum of both gradients.

How ε scales. ε is the Frobenius norm of δ over the **whole** embedding matrix, and only the rows of tokens used
in the batch are non-zero, so the perturbation a token receives depends on how many distinct tokens the batch
holds: with comparable row gradients, ``‖δ_row‖ ≈ ε / sqrt(#distinct tokens in the batch)``. Short inputs and
small batches therefore get large per-token perturbations for the same ε (sst2, batch 32, about 10 tokens per
sentence: about 240 distinct tokens, so ε = 1 moves each used row by about 0.065, 6% of all-MiniLM-L6-v2's median
word-embedding row norm 1.11); rows of tokens repeated across the batch ([CLS], [SEP], punctuation) sum their
gradients and take a larger share. An ε tuned at one batch size or text length does not transfer: sweep it
(docs/RESULTS.md, section "fgm-sweep").

Source: Su Jianlin, "对抗训练浅谈:意义、方法和思考(附Keras实现)" (2020-03-01), https://kexue.fm/archives/7234;
Miyato et al., "Adversarial Training Methods for Semi-Supervised Text Classification", arXiv 1605.07725.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from kexue.errors import ConfigError

__all__ = ["FGM", "resolve_embedding"]


def resolve_embedding(model: nn.Module) -> nn.Embedding:
    """The word-embedding module: ``model`` itself if it is an ``nn.Embedding``, else ``model.get_input_embeddings()``.

    Raises ConfigError when neither applies.
    """
    if isinstance(model, nn.Embedding):
        return model
    getter = getattr(model, "get_input_embeddings", None)
    if getter is None:
        raise ConfigError(f"{type(model).__name__} is not an nn.Embedding and has no get_input_embeddings()")
    emb = getter()
    if not isinstance(emb, nn.Embedding):
        raise ConfigError(f"get_input_embeddings() returned {type(emb).__name__}, expected nn.Embedding")
    return emb


class FGM:
    """Fast Gradient Method on the word-embedding matrix (Su's "matrix" scope).

    Args:
        model: an ``nn.Embedding`` or any module with ``get_input_embeddings()`` (transformers models, kexue's
            Transformer).
        epsilon: perturbation size ε (Frobenius norm of δ for ``norm="l2"``). Default 0.1: on sst2 with
            all-MiniLM-L6-v2 (batch 32) ε in 0.05–0.3 gave 84.2–84.7 dev accuracy in both loss modes, above the
            83.35 baseline, while the post's ε = 1 fell to 57.6 (adv_only); see "How ε scales" above.
        norm: ``"l2"`` (``δ = εG/(‖G‖_F+1e-8)``) or ``"sign"`` (``δ = ε·sign(G)``).
        loss_mode: ``"adv_only"`` (Su) or ``"clean_plus_adv"`` (common PyTorch recipe); used by :meth:`perturbed`.
        norm_eps: stabiliser added to ‖G‖_F (Su's code: 1e-8); with 0 a zero gradient gives δ = 0.

    Plain use (standard recipe)::

        loss = loss_fn(model(batch)); loss.backward()         # clean gradient, incl. E.grad
        fgm.attack()                                           # δ from E.grad
        loss_fn(model(batch)).backward()                       # adversarial gradient accumulates
        fgm.restore(); opt.step(); opt.zero_grad()

    Context-manager use (either loss_mode)::

        with fgm.perturbed(loss_fn(model(batch))):
            loss_fn(model(batch)).backward()
        opt.step()

    :meth:`restore` writes back the original rows bit for bit (only touched rows are saved, not the whole matrix).
    Source: https://kexue.fm/archives/7234
    """

    def __init__(self, model: nn.Module, epsilon: float = 0.1, norm: str = "l2", loss_mode: str = "adv_only",
                 norm_eps: float = 1e-8) -> None:
        if epsilon < 0:
            raise ConfigError(f"epsilon must be >= 0, got {epsilon}")
        if norm not in ("l2", "sign"):
            raise ConfigError(f"norm must be 'l2' or 'sign', got {norm!r}")
        if loss_mode not in ("adv_only", "clean_plus_adv"):
            raise ConfigError(f"loss_mode must be 'adv_only' or 'clean_plus_adv', got {loss_mode!r}")
        self.embedding = resolve_embedding(model)
        self.epsilon, self.norm, self.loss_mode, self.norm_eps = float(epsilon), norm, loss_mode, float(norm_eps)
        self._rows: torch.Tensor | None = None
        self._backup: torch.Tensor | None = None
        self.delta: torch.Tensor | None = None

    @property
    def weight(self) -> torch.Tensor:
        """The embedding matrix E, ``[vocab, hidden]``."""
        return self.embedding.weight

    def perturbation(self, grad: torch.Tensor) -> torch.Tensor:
        """δ for a matrix gradient G ``[vocab, hidden]`` (dense or sparse); same shape and dtype as E."""
        grad = grad.to_dense() if grad.is_sparse else grad
        grad = grad.detach().to(self.weight.dtype)
        if self.norm == "sign":
            return self.epsilon * torch.sign(grad)
        denom = torch.linalg.vector_norm(grad) + self.norm_eps
        if denom == 0:
            return torch.zeros_like(grad)
        return self.epsilon * grad / denom

    @torch.no_grad()
    def attack(self, grad: torch.Tensor | None = None) -> torch.Tensor:
        """Add δ to E in place and return δ. ``grad`` defaults to ``E.grad`` (after a clean backward).

        Raises ConfigError if no gradient is available or an attack is already active.
        """
        if self._rows is not None:
            raise ConfigError("FGM.attack() called twice without restore()")
        if grad is None:
            grad = self.weight.grad
            if grad is None:
                raise ConfigError("FGM.attack(): the embedding has no .grad; backward the clean loss first "
                                  "or pass grad=")
        delta = self.perturbation(grad)
        rows = (delta != 0).any(dim=1).nonzero().squeeze(1)
        self._rows = rows
        self._backup = self.weight.index_select(0, rows).clone()
        self.weight.index_add_(0, rows, delta.index_select(0, rows))
        self.delta = delta
        return delta

    @torch.no_grad()
    def restore(self) -> None:
        """Put back the original rows of E exactly (no-op if no attack is active)."""
        if self._rows is None:
            return
        self.weight.index_copy_(0, self._rows, self._backup)
        self._rows, self._backup = None, None

    @contextmanager
    def perturbed(self, clean_loss: torch.Tensor) -> Iterator[torch.Tensor]:
        """Perturb E from ``clean_loss`` for the duration of the block; yields δ.

        ``adv_only``: δ from ``torch.autograd.grad(clean_loss, E)`` — ``.grad`` untouched by the clean loss.
        ``clean_plus_adv``: ``clean_loss.backward()`` (all parameters), δ from the increase of ``E.grad``.
        Run the perturbed forward and backward **inside** the block; E is restored on exit, even on error.
        """
        if self.loss_mode == "adv_only":
            (grad,) = torch.autograd.grad(clean_loss, self.weight)
        else:
            before = None if self.weight.grad is None else self.weight.grad.detach().clone()
            clean_loss.backward()
            grad = self.weight.grad.detach()
            grad = grad if before is None else grad - before
        delta = self.attack(grad)
        try:
            yield delta
        finally:
            self.restore()
