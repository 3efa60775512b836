"""KgCLUE answer metrics on the object O: exact match, character-level LCS F1, and their mean.

Per question, with ``O^`` the predicted and ``O`` the gold object:

* ``EM = 1[O^ == O]``;
* ``F1 = 2 · LCS(O^, O) / (|O^| + |O|)``, LCS the longest common subsequence over characters;
* ``score = (EM + F1) / 2``; each averaged over the questions.

Since ``LCS(O, O) = |O|``, an exact match has F1 = 1, so per question ``EM ≤ F1``: the article's table (spec §9) whose
"F1" column is below "EM" has its two columns swapped in the readable copy (read valid as EM 89.20, F1 91.04).
Two empty strings count as identical (EM = F1 = 1); the reference divides by zero there, and the spec's "0" would
break ``EM ≤ F1``. KgCLUE objects are never empty, so this only matters for an empty prediction of an empty gold.

Source: "Seq2Seq+前缀树:检索任务新范式(以KgCLUE为例)", https://kexue.fm/archives/8802 (bojone/KgCLUE-bert4keras).
"""

from __future__ import annotations

from collections.abc import Sequence

from kexue.errors import ConfigError

__all__ = ["lcs_length", "kgclue_scores", "kgclue_metrics"]


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence of two sequences (characters of strings, or token ids);
    ``O(|a|·|b|)`` time, ``O(|b|)`` memory."""
    if not a or not b:
        return 0
    row = [0] * (len(b) + 1)
    for x in a:
        prev_diag = 0
        for j, y in enumerate(b, 1):
            keep = row[j]
            row[j] = prev_diag + 1 if x == y else max(row[j], row[j - 1])
            prev_diag = keep
    return row[-1]


def kgclue_scores(pred: str, gold: str) -> tuple[float, float]:
    """``(EM, F1)`` of one predicted object against the gold one (see the module docstring)."""
    if not pred and not gold:
        return 1.0, 1.0
    em = float(pred == gold)
    f1 = 2.0 * lcs_length(pred, gold) / (len(pred) + len(gold))
    return em, f1


def kgclue_metrics(preds: Sequence[str], golds: Sequence[str]) -> dict[str, float]:
    """Mean ``em``, ``f1`` and ``score = (em + f1) / 2`` over questions, each in ``[0, 1]``, plus ``count``.

    Raises:
        ConfigError: different numbers of predictions and gold answers, or none.
    """
    if len(preds) != len(golds):
        raise ConfigError(f"kgclue_metrics: {len(preds)} predictions for {len(golds)} gold answers")
    if not golds:
        raise ConfigError("kgclue_metrics: no questions to score")
    em = f1 = 0.0
    for p, g in zip(preds, golds):
        e, f = kgclue_scores(p, g)
        em, f1 = em + e, f1 + f
    n = len(golds)
    return {"em": em / n, "f1": f1 / n, "score": (em + f1) / (2 * n), "count": n}
