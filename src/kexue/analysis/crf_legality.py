"""Is a learned CRF transition matrix sensible? The legality predicate of "你的CRF层的学习率可能不够大"
(https://kexue.fm/archives/7196) and its synthetic BMES experiment.

The article found BERT+CRF segmentation reaching state-of-the-art F1 with a nonsensical transition matrix: the
emissions converge fast to large, well-separated scores, while the transitions at the fine-tuning learning rate
barely move and then stop receiving gradient. A matrix is *legal* (row-wise) when, from every tag, the smallest
score of a legal transition exceeds the largest score of an illegal one — so that the transitions alone would rule
out every illegal path. For word segmentation with tags (s, b, m, e): s→{s, b}, b→{m, e}, m→{m, e}, e→{s, b}.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from kexue.errors import ConfigError

BMES_TAGS = ("s", "b", "m", "e")
#: The article's matrices (row = from, column = to, order s, b, m, e): BERT lr 1e-5 with CRF lr 1e-5 ("before") and
#: with CRF lr 1e-2 ("after").
ARTICLE_BEFORE = ((-0.0517, -0.459, -0.244, 0.707), (-0.564, -0.142, 0.314, 0.613),
                  (0.196, -0.334, -0.794, 0.672), (0.769, 0.841, -0.683, 0.572))
ARTICLE_AFTER = ((3.17, 2.16, -3.97, -2.04), (-3.89, -0.451, 1.67, 0.874),
                 (-3.9, -4.41, 3.82, 2.45), (1.88, 0.991, -2.48, -0.247))


def bmes_legal_transitions(tags: tuple[str, ...] = BMES_TAGS) -> Tensor:
    """``[K, K]`` bool, True where ``from → to`` is legal in the s/b/m/e word-segmentation scheme, rows and columns
    in the order of ``tags`` (a permutation of ``("s", "b", "m", "e")``).

    Raises:
        ConfigError: ``tags`` is not a permutation of s, b, m, e.
    """
    if sorted(tags) != sorted(BMES_TAGS):
        raise ConfigError(f"--tags: expected a permutation of {BMES_TAGS}, got {tags}")
    allowed = {"s": "sb", "b": "me", "m": "me", "e": "sb"}
    return torch.tensor([[t in allowed[f] for t in tags] for f in tags])


def row_legality(transitions: Tensor, legal: Tensor) -> Tensor:
    """Per row ``i``: ``min_{j legal} T[i, j] > max_{j illegal} T[i, j]`` -> ``[K]`` bool.

    A row with no illegal (or no legal) transition is legal by convention.

    Args:
        transitions: ``[K, K]`` float scores ``T[from, to]`` (e.g. ``crf.transitions``).
        legal: ``[K, K]`` bool.
    Raises:
        ConfigError: shapes that are not equal ``[K, K]``.
    """
    t = torch.as_tensor(transitions, dtype=torch.float64)
    if t.dim() != 2 or t.shape[0] != t.shape[1] or tuple(legal.shape) != tuple(t.shape):
        raise ConfigError(f"row_legality: expected two [K, K] matrices, got {tuple(t.shape)} and "
                          f"{tuple(legal.shape)}")
    inf = torch.tensor(float("inf"), dtype=torch.float64)
    lowest_legal = torch.where(legal, t, inf).min(dim=1).values
    highest_illegal = torch.where(~legal, t, -inf).max(dim=1).values
    return lowest_legal > highest_illegal


def is_legal(transitions: Tensor, legal: Tensor) -> bool:
    """Whether every row of ``transitions`` is legal (:func:`row_legality`)."""
    return bool(row_legality(transitions, legal).all())


@dataclass
class BMESExperiment:
    """Result of :func:`bmes_crf_experiment`: the learned ``transitions`` ``[4, 4]``, ``rows_legal`` ``[4]`` bool,
    ``legal`` (all rows) and the final mean NLL ``loss``."""

    transitions: Tensor
    rows_legal: Tensor
    legal: bool
    loss: float


def synthetic_bmes(num_sequences: int, length: int, generator: torch.Generator, emission_gap: float = 4.0,
                   noise: float = 1.0) -> tuple[Tensor, Tensor]:
    """Random word segmentations as BMES tags ``[N, L]`` (word lengths 1–4) and strong emissions ``[N, L, 4]``:
    ``emission_gap`` on the gold tag plus Gaussian ``noise`` everywhere (the article saw top emissions 6–8, the
    others ≥ 3 lower)."""
    tags = torch.empty(num_sequences, length, dtype=torch.long)
    for n in range(num_sequences):
        row: list[int] = []
        while len(row) < length:
            w = int(torch.randint(1, 5, (1,), generator=generator))
            row.extend([0] if w == 1 else [1] + [2] * (w - 2) + [3])
        tags[n] = torch.tensor(row[:length])
        if row[length - 1] in (1, 2):  # a cut word at the end: close it so the sequence stays legal
            tags[n, length - 1] = 3 if length > 1 and int(tags[n, length - 2]) in (1, 2) else 0
    emissions = noise * torch.randn(num_sequences, length, 4, generator=generator, dtype=torch.float64)
    emissions.scatter_add_(2, tags.unsqueeze(-1), torch.full((num_sequences, length, 1), emission_gap,
                                                             dtype=torch.float64))
    return emissions, tags


def bmes_crf_experiment(lr_multiplier: float, steps: int = 300, base_lr: float = 1e-5, seed: int = 0,
                        num_sequences: int = 64, length: int = 24) -> BMESExperiment:
    """Train only a CRF's transitions (frozen strong emissions) on synthetic BMES data with Adam at
    ``base_lr`` and the re-parameterised ``lr_multiplier`` (effective lr ``λ·base_lr`` under Adam), then check the
    legality predicate. The article: λ = 1 leaves a nonsensical matrix, λ ≥ 100 gives a sensible one.

    Args:
        lr_multiplier: λ of :class:`kexue.nn.CRF`.
        steps: full-batch Adam steps.
        base_lr: the encoder-sized learning rate (the article: 1e-5).
        seed: seeds the data and the CRF's initialisation.
        num_sequences, length: the synthetic data's size.
    Returns:
        :class:`BMESExperiment`.
    """
    from kexue.nn.crf import CRF

    gen = torch.Generator().manual_seed(seed)
    emissions, tags = synthetic_bmes(num_sequences, length, gen)
    torch.manual_seed(seed)
    crf = CRF(4, lr_multiplier=lr_multiplier).double()
    optimizer = torch.optim.Adam(crf.parameters(), lr=base_lr)
    loss = torch.tensor(0.0)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = crf(emissions, tags)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        transitions = crf.transitions.detach().clone()
    rows = row_legality(transitions, bmes_legal_transitions())
    return BMESExperiment(transitions=transitions, rows_legal=rows, legal=bool(rows.all()), loss=float(loss.detach()))
