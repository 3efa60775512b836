"""Gradient-view multi-task methods: the min-norm (Pareto / MGDA) direction and the primary/auxiliary projection.

Post II: find ``u`` with ``⟨gᵢ, u⟩ ≥ 0`` for every task (no task's loss increases to first order). The dual is
``min_{α∈Δⁿ} ½‖Σ αᵢ gᵢ‖²``, ``u* = Σ αᵢ* gᵢ``: closed form for two tasks (foot of the altitude,
``γ* = clip(⟨g₁, g₁-g₂⟩/‖g₁-g₂‖², 0, 1)`` on g₂), an exact support enumeration for a handful of tasks,
Frank–Wolfe (Su's iteration, approximate) for many. Everything needs only the Gram matrix
``M_ij = ⟨gᵢ, gⱼ⟩``.

Post III: primary loss L₀ with auxiliaries that must not increase: ``min_{λ≥0} ½‖g₀ + Σ λᵢ gᵢ‖²``,
``u* = g₀ + Σ λᵢ* gᵢ``; n=1: ``λ* = relu(-⟨g₀,g₁⟩)/‖g₁‖²``; n>1 by coordinate updates.

Sources: Su Jianlin, "多任务学习漫谈(二):行梯度之事" (2022-02-08), https://kexue.fm/archives/8896 and
"多任务学习漫谈(三):分主次之序" (2022-02-14), https://kexue.fm/archives/8907; Sener & Koltun, "Multi-Task Learning as
Multi-Objective Optimization", NeurIPS 2018, arXiv 1810.04650.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch

from kexue.errors import ConfigError

__all__ = ["gram_matrix", "min_norm_two", "min_norm_weights", "primary_aux_weights", "GradientBalancer"]


def gram_matrix(grads: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """``M = G Gᵀ`` for task gradients stacked as rows ``[n, d]`` (a sequence of same-size tensors is flattened)."""
    g = grads if isinstance(grads, torch.Tensor) else torch.stack([t.reshape(-1) for t in grads])
    if g.dim() != 2:
        raise ConfigError(f"task gradients must be [n_tasks, dim], got shape {tuple(g.shape)}")
    return g @ g.T


def min_norm_two(m11: float | torch.Tensor, m12: float | torch.Tensor, m22: float | torch.Tensor) -> float:
    """Weight γ* on g₂ of the min-norm point of segment [g₁, g₂] from Gram entries.

    ``γ* = clip((M11 - M12)/(M11 - 2 M12 + M22), 0, 1)``; ``g₁ = g₂`` gives 0. Example: g₁=(1,0), g₂=(-0.5,1) →
    6/13. Source: https://kexue.fm/archives/8896
    """
    m11, m12, m22 = float(m11), float(m12), float(m22)
    denom = m11 - 2.0 * m12 + m22
    if denom <= 0.0:
        return 0.0
    return min(1.0, max(0.0, (m11 - m12) / denom))


EXACT_MAX_TASKS = 12


def _min_norm_exact(m: np.ndarray) -> np.ndarray:
    """Exact simplex min-norm weights by support enumeration with the KKT system on each support.

    For a support ``S`` the minimiser of ``αᵀMα`` over the affine hull ``{Σ_S α = 1}`` solves the bordered system
    ``[[M_SS, 1], [1ᵀ, 0]] [α_S; −μ] = [0; 1]`` (``M_SS α_S = μ·1``: every active task has the same inner
    product ``μ`` with ``u``). A solution with ``α_S ≥ 0`` is a feasible point, so its objective bounds the
    optimum from above; an optimum whose active gradients are affinely independent exists (Carathéodory), and on
    that support the system is non-singular and returns it exactly. The smallest objective over all supports is
    therefore the optimum; supports are visited by size and ties keep the smaller support. Singular systems
    (duplicate, collinear or zero gradients) are solved by least squares and kept only if they satisfy the
    system. Cost ``O(2ⁿ n³)``: meant for a handful of tasks.
    """
    n = m.shape[0]
    scale = max(float(np.max(np.abs(np.diag(m)))), 1e-300)
    best_alpha = np.eye(n)[int(np.argmin(np.diag(m)))]
    best = float(best_alpha @ m @ best_alpha)
    for size in range(2, n + 1):
        for support in itertools.combinations(range(n), size):
            idx = list(support)
            system = np.zeros((size + 1, size + 1))
            system[:size, :size] = m[np.ix_(idx, idx)]
            system[:size, size] = 1.0
            system[size, :size] = 1.0
            rhs = np.zeros(size + 1)
            rhs[size] = 1.0
            solution = np.linalg.lstsq(system, rhs, rcond=None)[0]
            if np.abs(system @ solution - rhs).max() > 1e-9 * max(scale, 1.0):
                continue  # inconsistent singular system: no stationary point on this affine hull
            weights = solution[:size]
            if weights.min() < -1e-12:
                continue  # the affine minimiser lies outside the face
            weights = np.clip(weights, 0.0, None)
            weights /= weights.sum()
            alpha = np.zeros(n)
            alpha[idx] = weights
            value = float(alpha @ m @ alpha)
            if value < best - 1e-15 * scale:
                best, best_alpha = value, alpha
    return best_alpha


def min_norm_weights(grads_or_gram: torch.Tensor, method: str = "auto", is_gram: bool = False,
                     max_iter: int = 1000, tol: float = 1e-10) -> torch.Tensor:
    """Simplex weights α minimising ``‖Σ αᵢ gᵢ‖²`` (the MGDA / Pareto min-norm direction ``u = Σ αᵢ gᵢ``).

    Args:
        grads_or_gram: task gradients ``[n, d]`` or, with ``is_gram=True``, their Gram matrix ``[n, n]``.
        method: ``"exact2"`` (n=2 closed form), ``"exact"`` (support enumeration with the KKT system on each
            support, exact up to float64 round-off, ``n ≤ 12``), ``"frank_wolfe"`` (line-searched Frank–Wolfe
            from uniform α; sublinear: ≈1e-3 relative gap after 1000 iterations), ``"average"`` (Su's averaging
            iteration, FW with step 1/(k+1)), ``"auto"`` (exact2 if n=2, exact if n ≤ 12, else Frank–Wolfe).
        max_iter: iterations for the iterative methods.
        tol: FW stops when γ·(duality gap) falls below ``tol·‖ĝ‖²`` (relative objective decrease).

    Returns: float64 tensor ``[n]`` on the simplex. For ``"exact"`` the KKT conditions hold: ``(Mα)_i ≥ αᵀMα``
    for every task, with equality where ``αᵢ > 0`` (duplicate gradients: one of the optimal splits).
    Raises ConfigError on a bad shape or method, or ``"exact"`` with more than 12 tasks.
    Source: https://kexue.fm/archives/8896
    """
    m = grads_or_gram if is_gram else gram_matrix(grads_or_gram)
    m = m.detach().to(torch.float64).cpu()
    n = m.shape[0]
    if m.dim() != 2 or m.shape[1] != n or n < 1:
        raise ConfigError(f"Gram matrix must be square [n, n], got shape {tuple(m.shape)}")
    if method == "auto":
        method = "exact2" if n == 2 else ("exact" if n <= EXACT_MAX_TASKS else "frank_wolfe")
    if method == "exact2":
        if n != 2:
            raise ConfigError(f"method 'exact2' needs exactly 2 tasks, got {n}")
        gamma = min_norm_two(m[0, 0], m[0, 1], m[1, 1])
        return torch.tensor([1.0 - gamma, gamma], dtype=torch.float64)
    if method == "exact":
        if n > EXACT_MAX_TASKS:
            raise ConfigError(f"method 'exact' enumerates supports and takes at most {EXACT_MAX_TASKS} tasks, "
                              f"got {n}; use 'frank_wolfe'")
        sym = m.numpy()
        return torch.from_numpy(_min_norm_exact((sym + sym.T) / 2))
    if method not in ("frank_wolfe", "average"):
        raise ConfigError(
            f"method must be 'auto', 'exact', 'exact2', 'frank_wolfe' or 'average', got {method!r}")
    alpha = torch.full((n,), 1.0 / n, dtype=torch.float64)
    for k in range(1, max_iter + 1):
        m_alpha = m @ alpha                      # ⟨gᵢ, ĝ(α)⟩
        tau = int(torch.argmin(m_alpha))
        if method == "average":
            gamma = 1.0 / (k + 1)
        else:
            a, b, c = float(alpha @ m_alpha), float(m_alpha[tau]), float(m[tau, tau])
            gamma = min_norm_two(a, b, c)        # line search between ĝ(α) and g_τ
            if gamma * (a - b) <= tol * max(a, 1e-300):  # relative decrease of the objective
                break
        alpha = (1.0 - gamma) * alpha
        alpha[tau] += gamma
    return alpha


def primary_aux_weights(grads_or_gram: torch.Tensor, is_gram: bool = False, max_sweeps: int = 200,
                        method: str = "cyclic", tol: float = 1e-12) -> torch.Tensor:
    """λ ≥ 0 minimising ``½‖g₀ + Σ λᵢ gᵢ‖²`` — the update ``u = g₀ + Σ λᵢ gᵢ`` descends on the primary loss L₀
    without increasing any auxiliary loss to first order.

    Args:
        grads_or_gram: gradients ``[1 + n_aux, d]`` with the primary first, or their Gram matrix (``is_gram``).
        max_sweeps: coordinate passes (each updates n coordinates).
        method: ``"cyclic"`` (exact coordinate minimisation in order) or ``"greedy"`` (Su's variant: the most
            violated constraint ``τ = argmin_i ⟨gᵢ, u⟩`` each time). Greedy reaches feasibility
            (``⟨gᵢ,u⟩ ≥ 0``) but can stall before the optimum: once every constraint holds, a λᵢ that should
            shrink back towards 0 is never selected. Use "cyclic" (default) for the exact minimiser.
        tol: stop when no coordinate moves more than this in a sweep.

    Coordinate update: ``w = u - λ_τ g_τ``, ``λ_τ = relu(-⟨w, g_τ⟩)/‖g_τ‖²`` (0 when ‖g_τ‖ = 0).
    n=1 gives the closed form ``relu(-⟨g₀,g₁⟩)/‖g₁‖²``; g₀=(1,0), g₁=(-1,1) → λ=0.5, u=(0.5,0.5).
    Returns: float64 tensor ``[n_aux]``. Raises ConfigError for bad shapes/method. Source: archives/8907
    """
    m = grads_or_gram if is_gram else gram_matrix(grads_or_gram)
    m = m.detach().to(torch.float64).cpu()
    if m.dim() != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise ConfigError(f"need a primary and at least one auxiliary task, got Gram shape {tuple(m.shape)}")
    if method not in ("cyclic", "greedy"):
        raise ConfigError(f"method must be 'cyclic' or 'greedy', got {method!r}")
    n = m.shape[0] - 1
    lam = torch.zeros(n, dtype=torch.float64)
    m0, ma = m[1:, 0], m[1:, 1:]                 # ⟨gᵢ, g₀⟩, ⟨gᵢ, gⱼ⟩ for auxiliaries
    for _ in range(max_sweeps):
        moved = 0.0
        for j in range(n):
            inner = m0 + ma @ lam                # ⟨gᵢ, u⟩
            i = j if method == "cyclic" else int(torch.argmin(inner))
            sq = float(ma[i, i])
            w_dot = float(inner[i]) - float(lam[i]) * sq
            new = max(0.0, -w_dot) / sq if sq > 0.0 else 0.0
            moved = max(moved, abs(new - float(lam[i])))
            lam[i] = new
        if moved <= tol:
            break
    return lam


def _flat_grads(loss: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])


class GradientBalancer:
    """Combine per-task gradients on shared parameters and write the result into ``.grad``.

    Modes: ``"pareto"`` (min-norm direction, :func:`min_norm_weights`), ``"primary_aux"`` (first task primary,
    :func:`primary_aux_weights`), ``"unit_norm_sum"`` (``Σ gᵢ/‖gᵢ‖``, Pareto-safe for two tasks). Task-specific
    (head) parameters receive their own tasks' gradients unchanged (from ``Σ Lᵢ``).

    ``approx="shared_encoder"`` (MGDA-UB) computes the weights from the gradients w.r.t. the encoder output H
    (pass ``encoder_output=``) instead of the shared parameters: one backward of ``Σ αᵢ Lᵢ`` instead of one per
    task; a heuristic (its Pareto guarantee rests on a false lemma — see post II).

    Args:
        shared_params: the shared (encoder) parameters.
        mode, approx: as above. max_iter: for Frank–Wolfe / coordinate sweeps.

    ``backward(losses)`` takes a dict ``{task: scalar}`` or a sequence (primary first for "primary_aux") and
    returns the weights used (float64 tensor: α, or ``[1, λ...]`` for primary_aux). Gradients accumulate into
    ``.grad`` like ``loss.backward()``. Raises ConfigError on bad options. Sources: archives/8896, archives/8907.
    """

    def __init__(self, shared_params: Iterable[torch.Tensor], mode: str = "pareto", approx: str = "none",
                 max_iter: int = 1000) -> None:
        if mode not in ("pareto", "primary_aux", "unit_norm_sum"):
            raise ConfigError(f"mode must be 'pareto', 'primary_aux' or 'unit_norm_sum', got {mode!r}")
        if approx not in ("none", "shared_encoder"):
            raise ConfigError(f"approx must be 'none' or 'shared_encoder', got {approx!r}")
        self.shared_params = [p for p in shared_params if p.requires_grad]
        if not self.shared_params:
            raise ConfigError("GradientBalancer: no shared parameter requires grad")
        self.mode, self.approx, self.max_iter = mode, approx, max_iter

    def _weights(self, gram: torch.Tensor) -> torch.Tensor:
        if self.mode == "pareto":
            return min_norm_weights(gram, is_gram=True, max_iter=self.max_iter)
        if self.mode == "primary_aux":
            lam = primary_aux_weights(gram, is_gram=True, max_sweeps=self.max_iter)
            return torch.cat([torch.ones(1, dtype=torch.float64), lam])
        norms = gram.diagonal().clamp_min(1e-30).sqrt()
        return 1.0 / norms

    def backward(self, losses: Mapping[str, torch.Tensor] | Sequence[torch.Tensor],
                 encoder_output: torch.Tensor | None = None) -> torch.Tensor:
        """Per-task gradients → weights → combined shared gradient added to ``.grad``; heads get ``∇ Σ Lᵢ``."""
        values = list(losses.values()) if isinstance(losses, Mapping) else list(losses)
        if len(values) < (2 if self.mode == "primary_aux" else 1):
            raise ConfigError(f"mode {self.mode!r} needs more task losses, got {len(values)}")
        if self.approx == "shared_encoder":
            if encoder_output is None:
                raise ConfigError("approx='shared_encoder' needs encoder_output=")
            g = torch.stack([_flat_grads(v, [encoder_output]) for v in values]).to(torch.float64)
            weights = self._weights(g @ g.T)
            w = weights.to(values[0].dtype).to(values[0].device)
            shared_total = sum(wi * v for wi, v in zip(w, values))
            shared_grads = torch.autograd.grad(shared_total, self.shared_params, retain_graph=True,
                                               allow_unused=True)
            combined = [torch.zeros_like(p) if s is None else s for p, s in zip(self.shared_params, shared_grads)]
        else:
            g = torch.stack([_flat_grads(v, self.shared_params) for v in values])
            weights = self._weights((g.to(torch.float64) @ g.to(torch.float64).T))
            flat = (weights.to(g.dtype).to(g.device)[:, None] * g).sum(0)
            combined, offset = [], 0
            for p in self.shared_params:
                combined.append(flat[offset:offset + p.numel()].view_as(p))
                offset += p.numel()
        before = [None if p.grad is None else p.grad.clone() for p in self.shared_params]
        sum(values).backward()                    # heads: their own task gradients
        for p, old, c in zip(self.shared_params, before, combined):
            p.grad = c.clone() if old is None else old + c
        return weights
