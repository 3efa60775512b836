"""SPACES data: the CAIL2020 sfzy reader, clause splitting, the ROUGE-weighted oracle alignment and LCS copy tags.

- :func:`split_clauses`: cut a text after ``\\n 。 ； ： ，`` (the delimiter stays with its clause).
- :func:`oracle_alignment` / :func:`oracle_extract`: the recursive alignment of the SPACES code, run with an
  explicit stack (no recursion limit to raise): take the longest summary clause ``i`` of the current range, match it
  to the document clause ``j`` of the range with the highest ``0.2·R1 + 0.4·R2 + 0.4·RL`` (character ROUGE F1,
  Google's ``rouge-score``), then align ``(doc[:j+1], summ[:i])`` and ``(doc[j:], summ[i+1:])``.
- :func:`copy_tags`: the copy mechanism as BIO tags from the longest common subsequence of source and target ids:
  0 unmatched, 1 a matched token that starts a run, 2 a matched token continuing a run contiguous in both.

Source: "SPACES:'抽取-生成'式长文本摘要(法研杯总结)", https://kexue.fm/archives/8046 and the author's code
(bojone/SPACES); spec arch §12.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kexue.errors import DataFormatError

__all__ = ["SfzyDocument", "load_sfzy", "split_clauses", "rouge_weighted", "oracle_alignment", "oracle_extract",
           "copy_tags", "lcs_pairs"]

CLAUSE_END = re.compile(r"[^\n。；：，]*[\n。；：，]?")
"""One clause: anything up to and including one of SPACES' delimiters ``\\n 。 ； ： ，``."""


@dataclass
class SfzyDocument:
    """One CAIL2020 sfzy judgment: ``sentences`` (the ``text`` list), ``labels`` (1 = flagged important by the
    organisers; ``None`` on test data) and ``summary`` (``None`` on test data)."""

    id: str
    sentences: list[str]
    labels: list[int] | None
    summary: str | None


def load_sfzy(path: str | Path, limit: int | None = None) -> list[SfzyDocument]:
    """Read a CAIL2020 sfzy JSON-lines file: ``{"id", "summary", "text": [{"sentence", "label"}]}`` per line.

    Args:
        path: the ``train.json`` file (or ``$KEXUE_DATA/cail2020_sfzy_sample``: its ``train.json``).
        limit: keep the first ``limit`` documents.
    Raises:
        DataFormatError(path, line, reason): bad JSON, a missing ``id`` / ``text``, a sentence without text.
        FileNotFoundError: no such file.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "train.json"
    docs: list[SfzyDocument] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip().lstrip("\ufeff")
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(path, number, f"not JSON ({exc.msg})") from None
            if not isinstance(row, dict) or "text" not in row or not isinstance(row["text"], list):
                raise DataFormatError(path, number, 'expected {"id", "summary", "text": [{"sentence", "label"}]}')
            sentences, labels = [], []
            for item in row["text"]:
                if not isinstance(item, dict) or not isinstance(item.get("sentence"), str):
                    raise DataFormatError(path, number, 'every "text" item needs a "sentence" string')
                sentences.append(item["sentence"])
                labels.append(int(item["label"]) if "label" in item else None)
            summary = row.get("summary")
            if summary is not None and not isinstance(summary, str):
                raise DataFormatError(path, number, '"summary" must be a string')
            docs.append(SfzyDocument(str(row.get("id", number)), sentences,
                                     None if None in labels else labels, summary))
            if limit is not None and len(docs) >= limit:
                break
    return docs


def split_clauses(text: str) -> list[str]:
    """Clauses of ``text`` cut after ``\\n``, ``。``, ``；``, ``：`` or ``，`` (kept at the clause's end); blank
    clauses are dropped. ``"甲，乙。丙"`` -> ``["甲，", "乙。", "丙"]``."""
    return [c for c in CLAUSE_END.findall(text) if c.strip()]


class _CharTokens:
    """rouge-score tokenizer: every non-space character is a token (Chinese character ROUGE)."""

    def tokenize(self, text: str) -> list[str]:
        return [c for c in text if not c.isspace()]


def rouge_weighted() -> Callable[[str, str], float]:
    """The SPACES alignment score ``score(candidate, reference) = 0.2·R1 + 0.4·R2 + 0.4·RL`` (F1 of character
    ROUGE-1/2/L, by Google's ``rouge-score``).

    Raises:
        ConfigError: ``rouge-score`` is not installed.
    """
    try:
        from rouge_score import rouge_scorer
    except ImportError:  # pragma: no cover - a dependency of kexue
        from kexue.errors import ConfigError
        raise ConfigError("the SPACES oracle needs rouge-score (pip install rouge-score)") from None
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_CharTokens())

    def score(candidate: str, reference: str) -> float:
        s = scorer.score(reference, candidate)
        return 0.2 * s["rouge1"].fmeasure + 0.4 * s["rouge2"].fmeasure + 0.4 * s["rougeL"].fmeasure
    return score


def oracle_alignment(doc_clauses: Sequence[str], summ_clauses: Sequence[str],
                     scorer: Callable[[str, str], float] | None = None) -> list[tuple[int, int]]:
    """Pairs ``(summary index i, document index j)`` of the SPACES recursive alignment, sorted by ``i``.

    Every summary clause gets one document clause; ``i`` strictly increases and ``j`` never decreases along the
    result (the sub-ranges share only the matched clause ``j``). Ties: the first longest summary clause, the first
    best document clause. Iterative (an explicit stack), so long documents need no raised recursion limit.

    Args:
        doc_clauses / summ_clauses: clauses (:func:`split_clauses`).
        scorer: ``score(doc_clause, summary_clause) -> float``; default :func:`rouge_weighted`.
    Returns:
        ``len(summ_clauses)`` pairs (empty if either side is empty).
    """
    scorer = scorer or rouge_weighted()
    pairs: list[tuple[int, int]] = []
    stack = [(0, len(doc_clauses), 0, len(summ_clauses))]  # doc [d0, d1), summary [s0, s1)
    while stack:
        d0, d1, s0, s1 = stack.pop()
        if d0 >= d1 or s0 >= s1:
            continue
        i = max(range(s0, s1), key=lambda k: (len(summ_clauses[k]), -k))
        j = max(range(d0, d1), key=lambda k: (scorer(doc_clauses[k], summ_clauses[i]), -k))
        pairs.append((i, j))
        stack.append((d0, j + 1, s0, i))
        stack.append((j, d1, i + 1, s1))
    return sorted(pairs)


def oracle_extract(doc_clauses: Sequence[str], summ_clauses: Sequence[str],
                   scorer: Callable[[str, str], float] | None = None) -> list[int]:
    """The oracle extraction labels: the sorted set of document clause indices :func:`oracle_alignment` matched."""
    return sorted({j for _, j in oracle_alignment(doc_clauses, summ_clauses, scorer)})


def lcs_pairs(a: Sequence[int], b: Sequence[int]) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)`` with ``a[i] == b[j]`` of one longest common subsequence, increasing in both
    (``O(|a|·|b|)`` table; the backtrack prefers matches, then skipping in ``a``)."""
    n, m = len(a), len(b)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = table[i], table[i + 1]
        for j in range(m - 1, -1, -1):
            row[j] = below[j + 1] + 1 if a[i] == b[j] else max(below[j], row[j + 1])
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        if a[i] == b[j] and table[i][j] == table[i + 1][j + 1] + 1:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def copy_tags(source_ids: Sequence[int], target_ids: Sequence[int]) -> tuple[list[int], list[int]]:
    """SPACES copy tags of the source and target tokens from their longest common subsequence.

    A token outside the LCS gets 0; an LCS token gets 2 if the previous LCS pair sits right before it in *both*
    sequences (the copied run goes on), else 1 (a run starts). Source ``a b c d``, target ``b c x d`` -> source
    ``[0, 1, 2, 1]``, target ``[1, 2, 0, 1]``.

    Returns:
        ``(source_tags, target_tags)``, lists of ints in {0, 1, 2} of the two lengths.
    """
    src, tgt = [0] * len(source_ids), [0] * len(target_ids)
    previous = None
    for i, j in lcs_pairs(source_ids, target_ids):
        tag = 2 if previous is not None and previous == (i - 1, j - 1) else 1
        src[i] = tgt[j] = tag
        previous = (i, j)
    return src, tgt
