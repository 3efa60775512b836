"""ChildTuning: fine-tune a "child" sub-network by masking gradients (ChildTuning-F and ChildTuning-D).

* ChildTuning-F (task-free): every step a fresh Bernoulli(p) mask ``M``; the gradient becomes ``g ⊙ M / p``.
* ChildTuning-D (task-driven): a fixed mask keeping the top fraction p of scalar parameters by diagonal Fisher
  information, computed once from a pass over the training data (:func:`compute_fisher_mask`).

Su's analysis: under Adam, gradient dropout behaves like a learning rate scaled by ``√p``; his alternative is
"update dropout" (mask the final increment Δθ instead of the gradient), offered here as ``apply_to="update"``.

Where the official code (alibaba/AliceMind ``ChildTuning/``) and the blog differ, this module follows the
**official code** by default and offers the blog's behaviour as an option:

* D-mode multiplies the gradient by the bool mask **without** dividing by p (``rescale_D=False``); the blog writes
  ``g ⊙ M / p`` for both variants (``rescale_D=True``).
* Decoupled weight decay also shrinks masked weights (``decay_masked=True``); ``False`` leaves them untouched.
* Fisher scores come from mini-batch gradients, each parameter tensor clipped to ``clip_grad_norm`` (1.0) before
  squaring, averaged over batches; only parameters whose name contains ``"layer"`` are masked.

Sources: Su Jianlin, "ChildTuning:试试把Dropout加到梯度上去?" (2021-11-22), https://kexue.fm/archives/8764;
Xu et al., "Raise a Child in Large Language Model", EMNLP 2021, arXiv 2109.05687.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from kexue.errors import ConfigError

__all__ = ["ChildTuningAdamW", "compute_fisher_mask", "default_child_tuning_filter"]


def default_child_tuning_filter(name: str) -> bool:
    """The official code's filter: mask only parameters whose name contains ``"layer"`` (encoder blocks)."""
    return "layer" in name


def _check_p(reserve_p: float) -> None:
    if not 0.0 < reserve_p <= 1.0:
        raise ConfigError(f"reserve_p must be in (0, 1], got {reserve_p}")


def compute_fisher_mask(model: nn.Module, batches: Iterable[Any], loss_fn: Callable[[nn.Module, Any], torch.Tensor],
                        reserve_p: float = 0.3,
                        param_filter: Callable[[str], bool] | None = default_child_tuning_filter,
                        clip_grad_norm: float | None = 1.0, return_scores: bool = False
                        ) -> dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """ChildTuning-D's mask: keep the global top fraction ``reserve_p`` of scalar parameters by Fisher score.

    ``F_i = (1/N) Σ_batches (∂L_batch/∂θ_i)²`` with ``L_batch = loss_fn(model, batch)`` (the mean negative
    log-likelihood of a mini-batch, as in the official code; pass one-example batches for the per-example Fisher).
    Each selected parameter's batch gradient is clipped to norm ``clip_grad_norm`` before squaring (None: no clip).
    ``M_i = F_i ≥ percentile(F, (1 - p)·100)`` over all selected parameters together (numpy's linear percentile).

    Args:
        model: any nn.Module; put in train mode for the pass (as the official code does) and restored afterwards.
        batches: iterable of batches (e.g. a DataLoader over the training data); must not be empty.
        loss_fn: ``loss_fn(model, batch) -> scalar tensor``.
        reserve_p: kept fraction p in (0, 1].
        param_filter: ``name -> bool`` selecting the maskable parameters (default: names containing "layer");
            None selects every parameter that requires grad.
        clip_grad_norm: per-tensor clipping norm, or None.
        return_scores: also return the Fisher scores ``{name: float tensor}``.

    Returns:
        ``{parameter name: bool tensor of the parameter's shape}`` (and the scores if asked). Parameters with no
        gradient in any batch get score 0. ``.grad`` is not touched (gradients via ``autograd.grad``).

    Raises:
        ConfigError: p outside (0, 1], no parameter selected, or no batch given.
    """
    _check_p(reserve_p)
    named = [(n, p) for n, p in model.named_parameters()
             if p.requires_grad and (param_filter is None or param_filter(n))]
    if not named:
        raise ConfigError("compute_fisher_mask: param_filter selected no trainable parameter")
    params = [p for _, p in named]
    scores = [torch.zeros_like(p, dtype=torch.float32 if p.dtype in (torch.float16, torch.bfloat16) else p.dtype)
              for p in params]
    was_training = model.training
    model.train()
    n_batches = 0
    for batch in batches:
        loss = loss_fn(model, batch)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for s, g in zip(scores, grads):
            if g is None:
                continue
            g = g.to(s.dtype)
            if clip_grad_norm is not None:
                norm = torch.linalg.vector_norm(g)
                g = g * torch.clamp(clip_grad_norm / (norm + 1e-6), max=1.0)
            s.add_(g * g)
        n_batches += 1
    model.train(was_training)
    if n_batches == 0:
        raise ConfigError("compute_fisher_mask: the batches iterable was empty")
    for s in scores:
        s.div_(n_batches)
    flat = torch.cat([s.detach().reshape(-1).cpu().double() for s in scores]).numpy()
    threshold = float(np.percentile(flat, (1.0 - reserve_p) * 100.0))
    masks = {n: s >= threshold for (n, _), s in zip(named, scores)}
    if return_scores:
        return masks, {n: s for (n, _), s in zip(named, scores)}
    return masks


class ChildTuningAdamW(torch.optim.AdamW):
    """AdamW whose gradients (or updates) are masked ChildTuning-style.

    Step rule: with ``apply_to="grad"`` the AdamW step sees ``g ⊙ M / p`` (F-mode; D-mode ``g ⊙ M``, or ``/p``
    with ``rescale_D=True``); with ``apply_to="update"`` the AdamW step sees ``g`` and the increment is
    masked instead: ``θ ← θ + Δθ ⊙ M / p`` (Su's "update dropout"). F-mode masks every parameter of the
    optimizer; D-mode masks only the parameters given to :meth:`set_gradient_mask` (others train normally).
    ``reserve_p=1`` in F-mode is bit-for-bit ``torch.optim.AdamW``. ``.grad`` tensors are not modified.

    Args:
        params: iterable of parameters or param-group dicts; other AdamW options via ``**adamw_kwargs``.
        lr, betas, eps, weight_decay: as ``torch.optim.AdamW`` (the official run.sh: lr 4e-5, wd 0.01).
        reserve_p: p in (0, 1] (official run.sh: 0.3 with mode "D"; the blog's example 0.2).
        mode: ``"F"`` | ``"D"``.
        apply_to: ``"grad"`` (paper) | ``"update"`` (Su's variant).
        rescale_D: divide D-mode masks by p (blog formula) — default False (official code).
        decay_masked: apply decoupled weight decay to masked entries (official code: True).
        generator: ``torch.Generator`` for F-mode masks (seed it for reproducibility).

    State: AdamW's, plus the D-mode masks saved under ``"child_tuning_masks"`` in ``state_dict()``.
    Raises ConfigError for invalid options. Source: https://kexue.fm/archives/8764, arXiv 2109.05687.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, reserve_p: float = 1.0, mode: str = "F",
                 apply_to: str = "grad", rescale_D: bool = False, decay_masked: bool = True,
                 generator: torch.Generator | None = None, **adamw_kwargs: Any) -> None:
        _check_p(reserve_p)
        if mode not in ("F", "D"):
            raise ConfigError(f"mode must be 'F' or 'D', got {mode!r}")
        if apply_to not in ("grad", "update"):
            raise ConfigError(f"apply_to must be 'grad' or 'update', got {apply_to!r}")
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, **adamw_kwargs)
        self.reserve_p, self.mode, self.apply_to = reserve_p, mode, apply_to
        self.rescale_D, self.decay_masked, self.generator = rescale_D, decay_masked, generator
        self._masks: dict[torch.Tensor, torch.Tensor] = {}

    def set_gradient_mask(self, masks: Mapping[Any, torch.Tensor], model: nn.Module | None = None) -> None:
        """Install D-mode masks, keyed by parameter tensor, or by name when ``model`` resolves the names.

        Raises ConfigError when a key is not a parameter of this optimizer, a name is unknown, or a shape differs.
        """
        own = {id(p) for g in self.param_groups for p in g["params"]}
        by_name = dict(model.named_parameters()) if model is not None else {}
        resolved: dict[torch.Tensor, torch.Tensor] = {}
        for key, mask in masks.items():
            if isinstance(key, str):
                if key not in by_name:
                    raise ConfigError(f"set_gradient_mask: no parameter named {key!r}"
                                      + ("" if model is not None else " (pass model= to resolve names)"))
                key = by_name[key]
            if id(key) not in own:
                raise ConfigError("set_gradient_mask: a masked tensor is not a parameter of this optimizer")
            if mask.shape != key.shape:
                raise ConfigError(f"set_gradient_mask: mask shape {tuple(mask.shape)} != parameter shape "
                                  f"{tuple(key.shape)}")
            resolved[key] = mask.to(device=key.device, dtype=torch.bool)
        self._masks = resolved

    def _mask_for(self, p: torch.Tensor) -> torch.Tensor | None:
        """The scaled mask ``M`` or ``M/p`` for this step (None = no masking)."""
        if self.mode == "F":
            if self.reserve_p == 1.0:
                return None
            device = self.generator.device if self.generator is not None else p.device
            keep = torch.rand(p.shape, generator=self.generator, device=device).to(p.device) < self.reserve_p
            return keep.to(p.dtype) / self.reserve_p
        mask = self._masks.get(p)
        if mask is None:
            return None
        return mask.to(p.dtype) / self.reserve_p if self.rescale_D else mask.to(p.dtype)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One AdamW step with the ChildTuning mask applied to gradients or updates."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        masks = {p: self._mask_for(p) for p in params}
        saved_grads: dict[torch.Tensor, torch.Tensor] = {}
        before: dict[torch.Tensor, torch.Tensor] = {}
        for p, m in masks.items():
            if m is None:
                continue
            if self.apply_to == "grad":
                saved_grads[p] = p.grad
                p.grad = p.grad * m
                if not self.decay_masked:
                    before[p] = p.detach().clone()
            else:
                before[p] = p.detach().clone()
        try:
            super().step()
        finally:
            for p, g in saved_grads.items():
                p.grad = g
        group_of = {p: g for g in self.param_groups for p in g["params"]}
        for p, old in before.items():
            m = masks[p]
            if self.apply_to == "update":
                p.copy_(old + (p - old) * m)
            else:  # decay_masked=False: give masked entries back the decoupled decay lr·wd·θ_old
                group = group_of[p]
                p.add_(torch.where(m == 0, old * (group["lr"] * group["weight_decay"]), torch.zeros_like(old)))
        return loss

    def state_dict(self) -> dict[str, Any]:
        """AdamW's state dict plus the D-mode masks (by parameter index, torch.optim's convention)."""
        sd = super().state_dict()
        index = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        sd["child_tuning_masks"] = {index[id(p)]: m.clone() for p, m in self._masks.items()}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        state_dict = dict(state_dict)
        masks = state_dict.pop("child_tuning_masks", {})
        super().load_state_dict(state_dict)
        flat = [p for g in self.param_groups for p in g["params"]]
        self._masks = {flat[int(i)]: m.to(device=flat[int(i)].device, dtype=torch.bool) for i, m in masks.items()}
