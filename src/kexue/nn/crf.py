"""Linear-chain conditional random field: batched NLL (forward algorithm) and Viterbi decoding.

Sources: CRF layer of bert4keras (``ConditionalRandomField``), the CRF learning-rate article
"你的CRF层的学习率可能不够大", https://kexue.fm/archives/7196, and for the sequence-labelling CRF
"简明条件随机场CRF介绍(附带纯Keras实现)", https://kexue.fm/archives/5542.

Path score of tags ``y`` over the valid positions ``t_1 < ... < t_n`` of a sequence (``mask`` = 1)::

    S(y) = start[y_{t_1}] + Σ_k x_{t_k}[y_{t_k}] + Σ_{k<n} T[y_{t_k}, y_{t_{k+1}}] + end[y_{t_n}]

Masked positions are skipped (a mask may have holes or leading zeros, e.g. a masked ``[CLS]``); every
sequence needs at least one valid position.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kexue.errors import ConfigError


class CRF(nn.Module):
    """Linear-chain CRF over ``num_tags`` tags with transitions, start and end transitions.

    Learning-rate multiplier (``lr_multiplier = λ``), by re-scaled storage as in bert4keras: the stored
    parameters are ``φ = θ/λ`` (``θ`` = transitions, start and end transitions) and the layer uses ``θ = λ·φ``.
    Then ``∂L/∂φ = λ·∂L/∂θ`` and

    * under plain SGD the step on ``θ`` is ``λ·(lr·λ·g) = lr·λ²·g``: the effective learning rate is multiplied
      by ``λ²`` (so for an SGD multiplier ``m`` use ``λ = sqrt(m)``);
    * under Adam/AdamW the step is invariant to the gradient's scale (exactly so with ``eps = 0``), so ``φ``
      moves by ``≈ lr`` per step and ``θ`` by ``λ·lr``: the effective learning rate is multiplied by ``λ``;
    * decoupled weight decay (AdamW) on ``φ`` shrinks ``θ`` at the same relative rate as without
      re-parameterisation; coupled L2 (``Adam(weight_decay=...)``) adds ``wd·θ/λ`` to ``φ``'s gradient.

    The alternative that behaves the same under every optimizer is a parameter group with ``lr = m·base_lr``
    and ``lr_multiplier = 1`` (see :func:`crf_param_groups`). The article uses a multiplier of 100–1000
    (bert4keras NER example: 1000 with encoder lr 1e-5). :attr:`transitions`, :attr:`start_transitions` and
    :attr:`end_transitions` always give the effective ``θ``.

    Args:
        num_tags: number of tags ``K``.
        lr_multiplier: ``λ`` of the re-parameterisation (1 = plain parameters).
        init_range: initial ``θ`` drawn from ``U(-init_range, init_range)`` (pytorch-crf uses 0.1).

    Shapes (batch first): ``emissions`` ``[B, L, K]`` float, ``tags`` ``[B, L]`` int64, ``mask`` ``[B, L]``
    (1/True = valid position; default all valid).

    Raises:
        ConfigError: ``num_tags < 1`` or ``lr_multiplier <= 0``.

    Source: https://kexue.fm/archives/7196, https://kexue.fm/archives/5542.
    """

    def __init__(self, num_tags: int, lr_multiplier: float = 1.0, init_range: float = 0.1) -> None:
        super().__init__()
        if num_tags < 1:
            raise ConfigError(f"num_tags must be >= 1, got {num_tags}")
        if lr_multiplier <= 0:
            raise ConfigError(f"lr_multiplier must be > 0, got {lr_multiplier}")
        self.num_tags = num_tags
        self.lr_multiplier = float(lr_multiplier)
        scale = init_range / self.lr_multiplier
        self.stored_transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-scale, scale))
        self.stored_start = nn.Parameter(torch.empty(num_tags).uniform_(-scale, scale))
        self.stored_end = nn.Parameter(torch.empty(num_tags).uniform_(-scale, scale))

    @property
    def transitions(self) -> Tensor:
        """Effective transition scores ``T[from, to]`` ``[K, K]`` (= ``λ·stored_transitions``)."""
        return self.stored_transitions * self.lr_multiplier

    @property
    def start_transitions(self) -> Tensor:
        """Effective start scores ``[K]``."""
        return self.stored_start * self.lr_multiplier

    @property
    def end_transitions(self) -> Tensor:
        """Effective end scores ``[K]``."""
        return self.stored_end * self.lr_multiplier

    @torch.no_grad()
    def set_transitions(self, transitions: Tensor, start: Tensor, end: Tensor) -> None:
        """Set the effective ``θ`` (stored as ``θ/λ``): ``transitions`` ``[K, K]``, ``start``/``end`` ``[K]``."""
        self.stored_transitions.copy_(transitions / self.lr_multiplier)
        self.stored_start.copy_(start / self.lr_multiplier)
        self.stored_end.copy_(end / self.lr_multiplier)

    def _validate(self, emissions: Tensor, mask: Tensor | None, tags: Tensor | None = None) -> Tensor:
        if emissions.dim() != 3 or emissions.shape[-1] != self.num_tags:
            raise ValueError(f"emissions must be [B, L, {self.num_tags}], got {tuple(emissions.shape)}")
        if mask is None:
            mask = torch.ones(emissions.shape[:2], dtype=torch.bool, device=emissions.device)
        mask = mask.bool()
        if mask.shape != emissions.shape[:2]:
            raise ValueError(f"mask shape {tuple(mask.shape)} != emissions [B, L] {tuple(emissions.shape[:2])}")
        if tags is not None and tags.shape != emissions.shape[:2]:
            raise ValueError(f"tags shape {tuple(tags.shape)} != emissions [B, L] {tuple(emissions.shape[:2])}")
        if not bool(mask.any(dim=1).all()):
            raise ValueError("every sequence needs at least one valid position (mask row of zeros found)")
        return mask

    def log_partition(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """``log Z`` ``[B]`` by the forward algorithm (batched; one step per position, skipping masked ones)."""
        mask = self._validate(emissions, mask)
        trans = self.transitions
        start, end = self.start_transitions, self.end_transitions
        alpha = start + emissions[:, 0]
        seen = mask[:, 0]
        for t in range(1, emissions.shape[1]):
            step = torch.logsumexp(alpha[:, :, None] + trans[None], dim=1) + emissions[:, t]
            first = mask[:, t] & ~seen
            alpha = torch.where(first[:, None], start + emissions[:, t],
                                torch.where(mask[:, t, None], step, alpha))
            seen = seen | mask[:, t]
        return torch.logsumexp(alpha + end, dim=1)

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None) -> Tensor:
        """Path score ``S(y)`` ``[B]`` of ``tags`` ``[B, L]`` (values at masked positions are ignored)."""
        mask = self._validate(emissions, mask, tags)
        tags = tags.masked_fill(~mask, 0)
        length = emissions.shape[1]
        positions = torch.arange(length, device=emissions.device).expand_as(tags)
        last_valid = torch.where(mask, positions, -1).cummax(dim=1).values  # last valid index <= t
        prev = torch.cat([torch.full_like(last_valid[:, :1], -1), last_valid[:, :-1]], dim=1)
        emit = emissions.gather(2, tags[..., None]).squeeze(-1)
        prev_tags = tags.gather(1, prev.clamp(min=0))
        trans = self.transitions[prev_tags, tags]
        has_prev = mask & (prev >= 0)
        first_tags = tags.gather(1, mask.long().argmax(dim=1, keepdim=True)).squeeze(1)
        last_tags = tags.gather(1, last_valid[:, -1:]).squeeze(1)
        return (
            (emit * mask).sum(1) + (trans * has_prev).sum(1)
            + self.start_transitions[first_tags] + self.end_transitions[last_tags]
        )

    def forward(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None,
                reduction: str = "mean") -> Tensor:
        """Negative log-likelihood ``log Z − S(y)`` of the gold ``tags``.

        Args:
            emissions: ``[B, L, K]``; tags: ``[B, L]`` int64; mask: ``[B, L]``.
            reduction: ``"mean"`` (over the batch), ``"sum"`` or ``"none"`` (``[B]``).
        Raises:
            ValueError: bad shapes, an empty sequence, or an unknown reduction.
        """
        nll = self.log_partition(emissions, mask) - self.score(emissions, tags, mask)
        if reduction == "mean":
            return nll.mean()
        if reduction == "sum":
            return nll.sum()
        if reduction == "none":
            return nll
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor | None = None, pad_tag: int = -1) -> Tensor:
        """Viterbi decoding: the highest-scoring tag path, batched.

        Args:
            emissions: ``[B, L, K]``; mask: ``[B, L]``.
            pad_tag: value written at masked positions.
        Returns:
            ``[B, L]`` int64 best tags (``pad_tag`` where ``mask`` is 0).
        """
        mask = self._validate(emissions, mask)
        trans = self.transitions
        start, end = self.start_transitions, self.end_transitions
        batch, length, num_tags = emissions.shape
        identity = torch.arange(num_tags, device=emissions.device).expand(batch, num_tags)
        best = start + emissions[:, 0]
        seen = mask[:, 0]
        pointers = []
        for t in range(1, length):
            cand = best[:, :, None] + trans[None]  # [B, from, to]
            step, arg = cand.max(dim=1)
            step = step + emissions[:, t]
            first = mask[:, t] & ~seen
            best = torch.where(first[:, None], start + emissions[:, t],
                               torch.where(mask[:, t, None], step, best))
            pointers.append(torch.where((mask[:, t] & seen)[:, None], arg, identity))
            seen = seen | mask[:, t]
        tag = (best + end).argmax(dim=1)
        path = [tag]
        for ptr in reversed(pointers):
            tag = ptr.gather(1, tag[:, None]).squeeze(1)
            path.append(tag)
        tags = torch.stack(path[::-1], dim=1)
        return tags.masked_fill(~mask, pad_tag)


def crf_param_groups(model: nn.Module, base_lr: float, crf_lr_multiplier: float,
                     extra: dict | None = None) -> list[dict]:
    """Optimizer parameter groups giving every :class:`CRF` in ``model`` ``lr = crf_lr_multiplier·base_lr``.

    The optimizer-independent way to raise the CRF learning rate (https://kexue.fm/archives/7196): use it
    with CRFs built with ``lr_multiplier=1``.

    Args:
        model: any module containing CRF submodules.
        base_lr: learning rate of all other parameters.
        crf_lr_multiplier: multiplier ``m`` for CRF parameters.
        extra: keys copied into both groups (e.g. ``weight_decay``).

    Returns:
        ``[{"params": others, "lr": base_lr}, {"params": crf_params, "lr": m·base_lr}]`` (empty groups omitted).

    Raises:
        ConfigError: ``crf_lr_multiplier <= 0``.
    """
    if crf_lr_multiplier <= 0:
        raise ConfigError(f"crf_lr_multiplier must be > 0, got {crf_lr_multiplier}")
    crf_ids = {id(p) for m in model.modules() if isinstance(m, CRF) for p in m.parameters()}
    crf_params = [p for p in model.parameters() if id(p) in crf_ids]
    others = [p for p in model.parameters() if id(p) not in crf_ids]
    groups = [
        {"params": others, "lr": base_lr, **(extra or {})},
        {"params": crf_params, "lr": base_lr * crf_lr_multiplier, **(extra or {})},
    ]
    return [g for g in groups if g["params"]]


def tags_to_lists(tags: Tensor, mask: Tensor) -> list[list[int]]:
    """Valid-position tags of each row of ``tags`` ``[B, L]`` as Python lists (``mask`` ``[B, L]``)."""
    return [row[m].tolist() for row, m in zip(tags, mask.bool(), strict=True)]
