"""Prefix-tree constrained decoding: a logits processor that allows only continuations of trie keys.

"Seq2Seq+前缀树:检索任务新范式(以KgCLUE为例)", https://kexue.fm/archives/8802 (spec §9 steps 3-4).
At each step the allowed set of a row is ``A = next_tokens(prefix)``, plus the end token when the prefix is a
whole key; the scores are restricted to ``A`` and renormalised. Guarantees (tested with adversarial logits):

- every finished output is a key of the trie followed by the end token (``generate`` refuses a
  ``max_new_tokens`` below ``trie.max_length + 1``);
- NaN scores count as ``-inf``; ``+inf`` scores inside ``A`` share the mass; a row whose scores inside ``A`` are
  all ``-inf`` gets a uniform distribution over ``A`` (never NaN, never an unconstrained token);
- a prefix outside the trie (empty ``A``) allows only the end token, or raises (``on_empty="raise"``).

The optional look-ahead (spec §9 step 4) re-weights ``p(v) <- p(v)^{1/w(v)}`` once the first field (``S``) is
complete, favouring continuations whose keys share more tokens (longest common subsequence) with the question.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from kexue.errors import ConfigError
from kexue.generation.processing import without_nan
from kexue.generation.trie import TokenTrie

ON_EMPTY = ("end", "raise")


def lcs_length(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common subsequence of two token sequences (``O(|a|·|b|)`` dynamic programme)."""
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def lookahead_weights(trie: TokenTrie, prefix: Sequence[int], query: Sequence[int], separator_id: int,
                      end_token_id: int | None = None) -> dict[int, float]:
    """The look-ahead exponents ``w(v)`` of the next tokens ``v`` of ``prefix`` (spec §9 step 4).

    ``Δ(c) = LCS(c, q) - LCS(prefix, q)`` for every key ``c`` that extends ``prefix``; ``w(v) = max(1, max_{c: c_t = v}
    Δ(c) + 1)``. Applied only when ``prefix`` already holds ``separator_id`` (the subject ``S`` is complete) and more
    than one token is allowed (``end_token_id`` counts when ``prefix`` is a key); otherwise ``{}`` (no change).
    """
    if separator_id not in prefix:
        return {}
    allowed = trie.next_tokens(prefix)
    if len(allowed) + (end_token_id is not None and trie.is_key(prefix)) <= 1:
        return {}
    base = lcs_length(prefix, query)
    t = len(prefix)
    weights: dict[int, float] = {}
    for key in trie.keys(prefix):
        if len(key) > t:
            w = max(1.0, float(lcs_length(key, query) - base + 1))
            weights[key[t]] = max(weights.get(key[t], 1.0), w)
    return weights


def lookahead_reweight(probs: torch.Tensor, prefix: Sequence[int], trie: TokenTrie, query_ids: Sequence[int],
                       separator_id: int, end_token_id: int | None = None) -> torch.Tensor:
    """``probs`` ``[V]`` with ``p(v) <- p(v)^{1/w(v)}`` for the next tokens of ``prefix`` (:func:`lookahead_weights`).

    Not renormalised: restricting to the allowed set and renormalising is :class:`TrieConstraint`'s job.
    """
    out = probs.clone()
    for v, w in lookahead_weights(trie, prefix, query_ids, separator_id, end_token_id).items():
        out[v] = probs[v] ** (1.0 / w)
    return out


class TrieConstraint:
    """Logits processor (:mod:`kexue.generation.processing`) restricting every row to the keys of ``trie``.

    Args:
        trie: the :class:`~kexue.generation.trie.TokenTrie` of allowed outputs (token ids without the end token).
        end_token_id: the token that closes an output (``[SEP]``).
        on_empty: what a prefix outside the trie gets: ``"end"`` (only the end token) or ``"raise"``.
        lookahead_queries: per-example question ids (index = the example's row in ``generate``'s batch) to turn
            on the look-ahead re-weighting; ``None`` = off.
        separator_id: the token after which the look-ahead applies (the ``[SEP]`` after ``S``); default the end
            token.
    Attributes:
        required_new_tokens: ``trie.max_length + 1`` (``generate`` checks ``max_new_tokens`` against it).
    Raises:
        ConfigError: an unknown ``on_empty``; (at a step) ``on_empty="raise"`` and a prefix outside the trie.
    """

    def __init__(self, trie: TokenTrie, end_token_id: int, *, on_empty: str = "end",
                 lookahead_queries: Sequence[Sequence[int]] | None = None, separator_id: int | None = None) -> None:
        if on_empty not in ON_EMPTY:
            raise ConfigError(f"on_empty must be one of {ON_EMPTY}, got {on_empty!r}")
        self.trie, self.end_token_id, self.on_empty = trie, int(end_token_id), on_empty
        self.lookahead_queries = None if lookahead_queries is None else [list(q) for q in lookahead_queries]
        self.separator_id = self.end_token_id if separator_id is None else int(separator_id)
        self.required_new_tokens = trie.max_length + 1
        self._nodes: dict[tuple[int, ...], int] = {(): 0}

    def _node(self, prefix: tuple[int, ...]) -> int:
        node = self._nodes.get(prefix)
        if node is None:
            parent = self._node(prefix[:-1])
            node = -1 if parent < 0 else self.trie.child(parent, prefix[-1])
            if len(self._nodes) > 1_000_000:
                self._nodes = {(): 0}
            self._nodes[prefix] = node
        return node

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        """The allowed next tokens of ``prefix``: its trie children, plus the end token when it is a whole key."""
        node = self._node(tuple(int(t) for t in prefix))
        if node < 0:
            if self.on_empty == "raise":
                raise ConfigError(f"prefix {list(prefix)[:20]} is not in the trie (on_empty='raise')")
            return [self.end_token_id]
        tokens = self.trie.children(node).tolist()
        if int(self.trie.value_ids[node]) >= 0 and self.end_token_id not in tokens:
            tokens.append(self.end_token_id)
        return tokens or [self.end_token_id]

    def __call__(self, target_ids: torch.Tensor, logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Restrict ``logits`` ``[N, V]`` to each row's allowed set (one scatter for all rows); see the module rules."""
        prefixes = target_ids.tolist()
        allowed = [self.allowed(p) for p in prefixes]
        row_index = torch.tensor([i for i, a in enumerate(allowed) for _ in a], dtype=torch.long)
        col_index = torch.tensor([t for a in allowed for t in a], dtype=torch.long)
        if col_index.numel() and int(col_index.max()) >= logits.shape[-1]:
            raise ConfigError(f"the trie holds token id {int(col_index.max())}, outside the model's vocabulary of "
                              f"{logits.shape[-1]} (built with another tokenizer?)")
        mask = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
        mask[row_index.to(logits.device), col_index.to(logits.device)] = True
        x = without_nan(logits.float())
        if self.lookahead_queries is not None:
            x = without_nan(self._lookahead(x, prefixes, rows.tolist()))
        x = x.masked_fill(~mask, float("-inf"))
        positive = torch.isposinf(x)
        rows_pos = positive.any(dim=1)
        x[rows_pos] = torch.where(positive[rows_pos], 0.0, float("-inf"))
        hopeless = ~torch.isfinite(x).any(dim=1)
        x[hopeless] = torch.where(mask[hopeless], 0.0, float("-inf"))
        return x

    def _lookahead(self, x: torch.Tensor, prefixes: list[list[int]], rows: list[int]) -> torch.Tensor:
        """``log p(v) / w(v)`` on the rows where the look-ahead applies (log-space ``p^{1/w}``)."""
        out = x
        for i, (prefix, row) in enumerate(zip(prefixes, rows)):
            weights = lookahead_weights(self.trie, prefix, self.lookahead_queries[row], self.separator_id,
                                        self.end_token_id)
            if not weights:
                continue
            if out is x:
                out = x.clone()
            logp = torch.log_softmax(x[i], dim=-1)
            out[i] = logp
            for v, w in weights.items():
                out[i, v] = logp[v] / w
        return out
