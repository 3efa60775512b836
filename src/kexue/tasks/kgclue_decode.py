"""KgCLUE retrieval as constrained generation: beam search whose every output is a key of the knowledge base.

The keys are the token ids of ``S [SEP] P [SEP] M`` (:mod:`kexue.tasks.kgclue`); at each step the allowed set is the
prefix tree's children of the decoded prefix, plus the end token ``[SEP]`` where the prefix is a whole key; the
model's probabilities are restricted to it and renormalised, ``p~(v) = p(v)·1[v ∈ A] / Σ_A p`` (spec §9 step 3).
With ``lookahead`` the probabilities are first re-weighted once ``S`` is complete and ``|A| > 1``: for each key
``c`` extending the prefix, ``Δ(c) = LCS(c, q) − LCS(prefix, q)`` (token ids, ``q`` the question),
``w(v) = max(1, max_{c: c_t = v} Δ(c) + 1)`` and ``p(v) ← p(v)^{1/w(v)}`` (step 4).

The model runs through a *stepper* (``start(input_ids, attention_mask, token_type_ids) -> logits[B, V]``,
``step(tokens[N]) -> logits[N, V]``, ``select(rows[N])``): :class:`UncachedStepper` here re-encodes the whole
sequence at each step. This module is the recipe's small adapter until :mod:`kexue.generation` (KV-cached steppers,
the flat-array ``TokenTrie`` and its logits processor) is complete; it keeps a plain dict trie of the keys.

Source: "Seq2Seq+前缀树:检索任务新范式(以KgCLUE为例)", https://kexue.fm/archives/8802; spec §9.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from kexue.errors import ConfigError
from kexue.metrics.kgclue import lcs_length

__all__ = ["KeyTrie", "UncachedStepper", "lookahead_weights", "constrained_beam_search"]

_VALUE = -1  # dict key of a node's value (token ids are >= 0)


class KeyTrie:
    """A prefix tree over token-id keys (nested dicts) with a value per key.

    ``next_tokens(prefix)`` lists the children of a prefix (empty for an unknown prefix), ``keys(prefix)`` every
    key that extends it, ``get(key)`` the value (``None`` if ``key`` is not a whole key).
    """

    def __init__(self) -> None:
        self.root: dict[int, Any] = {}
        self.size = 0

    def add(self, key: Sequence[int], value: Any) -> None:
        """Insert ``key`` with ``value``; a repeated key keeps its first value."""
        node = self.root
        for token in key:
            node = node.setdefault(int(token), {})
        if _VALUE not in node:
            node[_VALUE] = value
            self.size += 1

    def _node(self, prefix: Sequence[int]) -> dict | None:
        node = self.root
        for token in prefix:
            node = node.get(int(token))
            if node is None:
                return None
        return node

    def next_tokens(self, prefix: Sequence[int]) -> list[int]:
        """Token ids that may follow ``prefix`` inside a key."""
        node = self._node(prefix)
        return [] if node is None else [t for t in node if t != _VALUE]

    def is_key(self, prefix: Sequence[int]) -> bool:
        """Whether ``prefix`` is a whole key."""
        node = self._node(prefix)
        return node is not None and _VALUE in node

    def get(self, key: Sequence[int], default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        node = self._node(key)
        return default if node is None else node.get(_VALUE, default)

    def keys(self, prefix: Sequence[int] = ()) -> list[list[int]]:
        """Every key extending ``prefix`` (``prefix`` itself included when it is a key), depth first."""
        node = self._node(prefix)
        out: list[list[int]] = []
        if node is None:
            return out
        stack = [(node, list(prefix))]
        while stack:
            current, path = stack.pop()
            if _VALUE in current:
                out.append(path)
            stack.extend((child, path + [t]) for t, child in current.items() if t != _VALUE)
        return out


class UncachedStepper:
    """Next-token logits of a :class:`~kexue.tasks.seq2seq.Seq2SeqLM` by re-encoding ``source + target`` each step.

    Sources are right-padded ``[B, L]``; the target of each row is written right after its own source (padding
    moved behind it), so a row's positions and mask are those of the example alone.
    """

    def __init__(self, model) -> None:
        self.model = model

    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
              ) -> torch.Tensor:
        """Keep the sources; return the logits ``[B, V]`` of the first target token."""
        self.rows = [ids[m.bool()].tolist() for ids, m in zip(input_ids, attention_mask)]
        self.targets: list[list[int]] = [[] for _ in self.rows]
        self.pad = int(getattr(self.model.tokenizer, "pad_token_id", 0))
        return self._logits()

    def _logits(self) -> torch.Tensor:
        seqs = [s + t for s, t in zip(self.rows, self.targets)]
        length = max(len(s) for s in seqs)
        device = next(self.model.parameters()).device
        ids = torch.full((len(seqs), length), self.pad, dtype=torch.long)
        types = torch.zeros_like(ids)
        mask = torch.zeros_like(ids)
        for i, (s, t) in enumerate(zip(self.rows, self.targets)):
            ids[i, :len(s) + len(t)] = torch.tensor(s + t)
            types[i, len(s):len(s) + len(t)] = 1
            mask[i, :len(s) + len(t)] = 1
        logits = self.model(ids.to(device), types.to(device), mask.to(device))
        last = torch.tensor([len(s) - 1 for s in seqs], device=device)
        return logits[torch.arange(len(seqs), device=device), last]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append ``tokens`` ``[N]`` to the targets; return the next logits ``[N, V]``."""
        for target, token in zip(self.targets, tokens.tolist()):
            target.append(int(token))
        return self._logits()

    def select(self, rows: torch.Tensor) -> None:
        """Keep rows ``rows`` (reorder / drop / repeat)."""
        index = rows.tolist()
        self.rows = [self.rows[i] for i in index]
        self.targets = [list(self.targets[i]) for i in index]


def lookahead_weights(trie: KeyTrie, prefix: Sequence[int], question: Sequence[int], allowed: Sequence[int]
                      ) -> list[float]:
    """``w(v)`` for each allowed token: ``max(1, max Δ(c) + 1)`` over the keys ``c`` extending ``prefix + [v]``
    (1 for tokens with no such key, e.g. the end token)."""
    base = lcs_length(list(prefix), list(question))
    weights = []
    for v in allowed:
        best = None
        for key in trie.keys([*prefix, v]):
            delta = lcs_length(key, list(question)) - base
            best = delta if best is None else max(best, delta)
        weights.append(1.0 if best is None else max(1.0, best + 1.0))
    return weights


def _step_scores(logits: torch.Tensor, allowed: list[int], weights: list[float] | None) -> torch.Tensor:
    """Log of the restricted, renormalised probabilities of ``allowed`` (optionally re-weighted by ``p^{1/w}``).

    An allowed set whose probabilities all underflow is renormalised from the raw logits, and one whose logits are all
    ``-inf`` / NaN becomes uniform: never NaN, never a token outside ``allowed``."""
    logp = torch.log_softmax(logits.double(), dim=-1)[allowed]
    if weights is not None:
        logp = logp / torch.tensor(weights, dtype=logp.dtype)
    if not bool(torch.isfinite(logp).any()):
        logp = torch.log_softmax(logits.double()[allowed], dim=-1)
    if not bool(torch.isfinite(logp).any()):  # every allowed logit is -inf or NaN: uniform over the allowed set
        logp = torch.zeros(len(allowed), dtype=torch.float64)
    logp = torch.nan_to_num(logp, nan=-math.inf)
    return logp - torch.logsumexp(logp, dim=-1)


def constrained_beam_search(stepper, batch: dict[str, torch.Tensor], trie: KeyTrie, end_id: int, beam_size: int = 3,
                            questions: Sequence[Sequence[int]] | None = None, lookahead: bool = False,
                            sep_id: int | None = None, max_steps: int = 256) -> list[list[int]]:
    """Beam search restricted to the keys of ``trie``; returns one key per source (without the end token).

    Args:
        stepper: see the module docstring. batch: the encoded sources (``input_ids``, ``attention_mask``,
            ``token_type_ids`` ``[B, L]``).
        trie: the keys. end_id: the end token (``[SEP]``), allowed where the prefix is a whole key.
        beam_size: beams per source (1 = greedy). Scores are summed log-probabilities; a source is done when its
            best candidate ends, as bert4keras' ``beam_search`` (finished beams that are not the best are set
            aside and the beam shrinks; the best set-aside one is returned if every beam ends).
        questions / lookahead / sep_id: the question ids of each source and the ``[SEP]`` id for the look-ahead
            re-weighting (applied once the prefix holds a ``sep_id``, i.e. ``S`` is complete, and ``|A| > 1``).
    Raises:
        ConfigError: ``beam_size < 1``; ``lookahead`` without ``questions`` and ``sep_id``.
    """
    if beam_size < 1:
        raise ConfigError(f"--beam: expected an integer >= 1, got {beam_size}")
    if lookahead and (questions is None or sep_id is None):
        raise ConfigError("lookahead needs the question ids and the [SEP] id")
    n = batch["input_ids"].shape[0]
    logits = stepper.start(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    # one live beam per source to start with; rows of the stepper follow `live`
    live: list[tuple[int, list[int], float]] = [(i, [], 0.0) for i in range(n)]
    width = [beam_size] * n
    done: dict[int, tuple[list[int], float]] = {}
    aside: dict[int, tuple[list[int], float]] = {}
    for _ in range(max_steps):
        candidates: dict[int, list[tuple[float, int, int, bool]]] = {}
        for row, (src, prefix, score) in enumerate(live):
            allowed = trie.next_tokens(prefix)
            ends = trie.is_key(prefix)
            tokens = allowed + ([end_id] if ends else [])
            if not tokens:  # an unknown prefix cannot happen under the constraint; end it rather than loop
                tokens, ends = [end_id], True
            weights = None
            if lookahead and len(tokens) > 1 and sep_id in prefix:
                weights = lookahead_weights(trie, prefix, questions[src], allowed) + ([1.0] if ends else [])
            scores = _step_scores(logits[row], tokens, weights)
            for j, token in enumerate(tokens):
                finished = ends and j == len(tokens) - 1
                candidates.setdefault(src, []).append((score + float(scores[j]), row, token, finished))
        extended: list[tuple[int, list[int], float, int, int]] = []  # (source, prefix, score, row, token)
        for src, cands in candidates.items():
            cands.sort(key=lambda c: -c[0])
            top = cands[:width[src]]
            if top[0][3]:
                done[src] = (live[top[0][1]][1], top[0][0])
                continue
            for total, row, token, finished in top:
                if not finished:
                    extended.append((src, live[row][1] + [token], total, row, token))
                    continue
                width[src] -= 1
                if src not in aside or aside[src][1] < total:
                    aside[src] = (live[row][1], total)
            if width[src] == 0:
                done[src] = aside[src]
        extended = [e for e in extended if e[0] not in done]
        if not extended:
            live = []
            break
        stepper.select(torch.tensor([e[3] for e in extended], dtype=torch.long))
        logits = stepper.step(torch.tensor([e[4] for e in extended], dtype=torch.long))
        live = [(src, prefix, score) for src, prefix, score, _, _ in extended]
    for src, prefix, score in live:  # max_steps reached: the best live beam of each unfinished source
        if src not in done or done[src][1] < score:
            done[src] = (prefix, score)
    return [done.get(i, ([], -math.inf))[0] for i in range(n)]

