"""A token-id prefix tree stored as flat numpy arrays (CSR layout): the database of retrieval-as-generation.

"Seq2Seq+前缀树:检索任务新范式(以KgCLUE为例)", https://kexue.fm/archives/8802: a seq2seq model decodes a
database entry, and a trie over the tokenised entries restricts every step to the continuations that exist.
The article's dict-of-dicts trie of 20M KgCLUE triples needs about 30 GB of RAM; this one stores per node 4 bytes of label,
4-8 bytes of child offset and 4 bytes of value index, and can be memory-mapped from disk.

Layout (nodes numbered breadth-first, root = 0, children of a node contiguous and sorted by token id):

- ``offsets`` ``[n_nodes + 1]``: the children of node ``u`` are nodes ``offsets[u] + 1 .. offsets[u+1]``
  (the edge into node ``c`` is edge ``c - 1``, so no separate children array is needed);
- ``labels`` ``[n_nodes - 1]`` int32: the token id on the edge into node ``e + 1``;
- ``value_ids`` ``[n_nodes]`` int32: ``-1``, or the index of the node's value (the node ends a key);
- ``value_offsets`` ``[n_values + 1]`` int64 and ``value_bytes`` uint8: the values as UTF-8 strings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from itertools import chain
from pathlib import Path

import numpy as np

from kexue.errors import DataFormatError

_ARRAYS = ("offsets", "labels", "value_ids", "value_offsets", "value_bytes")
_FORMAT = "kexue-token-trie"


class TokenTrie:
    """Immutable token-id trie: ``next_tokens``, ``keys``, ``get``, ``save`` / ``load`` (optionally memory-mapped).

    Build one with :meth:`build` (or :class:`TrieBuilder`'s ``add``); keys are sequences of non-negative token ids,
    values are strings (``""`` when none is given). A duplicate key keeps its first value.
    """

    def __init__(self, offsets: np.ndarray, labels: np.ndarray, value_ids: np.ndarray, value_offsets: np.ndarray,
                 value_bytes: np.ndarray, max_length: int) -> None:
        self.offsets, self.labels, self.value_ids = offsets, labels, value_ids
        self.value_offsets, self.value_bytes = value_offsets, value_bytes
        self.max_length = int(max_length)

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, keys: Iterable[Sequence[int]], values: Iterable[str] | None = None) -> "TokenTrie":
        """The trie of ``keys`` (token-id sequences) with ``values`` (one string per key, or ``None``).

        Vectorised: the keys are sorted once and each depth's nodes are the distinct prefixes of that length.
        Raises:
            ValueError: a negative token id, or ``values`` of another length than ``keys``.
        """
        keys = [list(k) for k in keys]
        n = len(keys)
        value_list = [""] * n if values is None else [str(v) for v in values]
        if len(value_list) != n:
            raise ValueError(f"got {len(value_list)} values for {n} keys")
        lengths = np.fromiter((len(k) for k in keys), dtype=np.int64, count=n)
        width = int(lengths.max()) if n else 0
        flat = np.fromiter(chain.from_iterable(keys), dtype=np.int64, count=int(lengths.sum()))
        if flat.size and flat.min() < 0:
            raise ValueError("token ids must be >= 0")
        table = np.full((n, max(width, 1)), -1, dtype=np.int32 if not flat.size or flat.max() < 2**31 else np.int64)
        rows = np.repeat(np.arange(n), lengths)
        cols = np.arange(flat.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        table[rows, cols] = flat
        order = np.lexsort(table.T[::-1]) if n else np.zeros(0, dtype=np.int64)
        table, lengths = table[order], lengths[order]
        first_diff = np.zeros(n, dtype=np.int64)
        if n > 1:
            diff = table[1:] != table[:-1]
            first_diff[1:] = np.where(diff.any(axis=1), diff.argmax(axis=1), table.shape[1])
        depth_cols = np.arange(width)
        new = (depth_cols[None, :] >= first_diff[:, None]) & (depth_cols[None, :] < lengths[:, None])
        starts = [np.flatnonzero(new[:, d]) for d in range(width)]
        bases = np.concatenate(([1], 1 + np.cumsum([len(s) for s in starts]))).astype(np.int64)
        n_nodes = int(bases[-1])

        def node_of(row_index: np.ndarray, depth: int) -> np.ndarray:
            return bases[depth] + np.searchsorted(starts[depth], row_index, side="right") - 1

        labels = np.empty(n_nodes - 1, dtype=np.int32)
        parents = np.empty(n_nodes - 1, dtype=np.int64)
        for d, s in enumerate(starts):
            labels[bases[d] - 1:bases[d + 1] - 1] = table[s, d]
            parents[bases[d] - 1:bases[d + 1] - 1] = 0 if d == 0 else node_of(s, d - 1)
        counts = np.bincount(parents, minlength=n_nodes)
        index_type = np.int32 if n_nodes < 2**31 else np.int64
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(index_type)
        terminal = np.zeros(n, dtype=np.int64)
        for d in range(width):
            at = np.flatnonzero(lengths == d + 1)
            terminal[at] = node_of(at, d)
        nodes, first = np.unique(terminal, return_index=True)  # sorted rows: the first occurrence of a duplicate
        value_ids = np.full(n_nodes, -1, dtype=np.int32)
        value_ids[nodes] = np.arange(nodes.size, dtype=np.int32)
        encoded = [value_list[i].encode("utf-8") for i in order[first]]
        value_offsets = np.concatenate(([0], np.cumsum([len(e) for e in encoded]))).astype(np.int64)
        value_bytes = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
        return cls(offsets, labels, value_ids, value_offsets, value_bytes, width)

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        """Number of distinct keys."""
        return int(self.value_offsets.shape[0] - 1)

    @property
    def num_nodes(self) -> int:
        """Number of nodes, the root included."""
        return int(self.value_ids.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (the whole structure; nothing else is stored)."""
        return int(sum(getattr(self, name).nbytes for name in _ARRAYS))

    def child(self, node: int, token: int) -> int:
        """The child of ``node`` along ``token``, or ``-1``."""
        lo, hi = int(self.offsets[node]), int(self.offsets[node + 1])
        i = lo + int(np.searchsorted(self.labels[lo:hi], token))
        return i + 1 if i < hi and int(self.labels[i]) == token else -1

    def node(self, prefix: Sequence[int]) -> int:
        """The node reached by ``prefix``, or ``-1`` when no key starts with it (``()`` -> root 0)."""
        u = 0
        for token in prefix:
            u = self.child(u, int(token))
            if u < 0:
                return -1
        return u

    def children(self, node: int) -> np.ndarray:
        """Token ids of the edges out of ``node`` (sorted, int32 view)."""
        return self.labels[int(self.offsets[node]):int(self.offsets[node + 1])]

    def is_key(self, prefix: Sequence[int]) -> bool:
        """Whether ``prefix`` is a whole key."""
        u = self.node(prefix)
        return u >= 0 and int(self.value_ids[u]) >= 0

    __contains__ = is_key

    def next_tokens(self, prefix: Sequence[int]) -> list[int]:
        """The token ids that extend ``prefix`` towards some key (sorted; ``[]`` at a leaf or outside the trie)."""
        u = self.node(prefix)
        return [] if u < 0 else self.children(u).tolist()

    def _value(self, index: int) -> str:
        lo, hi = int(self.value_offsets[index]), int(self.value_offsets[index + 1])
        return bytes(self.value_bytes[lo:hi]).decode("utf-8")

    def get(self, key: Sequence[int], default: str | None = None) -> str | None:
        """The value of ``key``, or ``default`` when it is not a key."""
        u = self.node(key)
        if u < 0 or int(self.value_ids[u]) < 0:
            return default
        return self._value(int(self.value_ids[u]))

    def keys(self, prefix: Sequence[int] = ()) -> list[list[int]]:
        """Every key that starts with ``prefix`` (whole keys, prefix included), in token-id order."""
        start = self.node(prefix)
        if start < 0:
            return []
        found: list[list[int]] = []
        stack = [(start, list(prefix))]
        while stack:
            u, path = stack.pop()
            if int(self.value_ids[u]) >= 0:
                found.append(path)
            lo, hi = int(self.offsets[u]), int(self.offsets[u + 1])
            for e in range(hi - 1, lo - 1, -1):
                stack.append((e + 1, path + [int(self.labels[e])]))
        return found

    # ------------------------------------------------------------------ storage
    def save(self, path: str | Path) -> Path:
        """Write the arrays (``.npy``) and ``meta.json`` into the folder ``path`` (created); return it."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        for name in _ARRAYS:
            np.save(folder / f"{name}.npy", np.ascontiguousarray(getattr(self, name)))
        meta = {"format": _FORMAT, "version": 1, "num_keys": len(self), "num_nodes": self.num_nodes,
                "max_length": self.max_length}
        (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = False) -> "TokenTrie":
        """Read a folder written by :meth:`save`; ``mmap=True`` maps the arrays read-only instead of reading them.

        Raises:
            DataFormatError(path, None, reason): not a trie folder, a missing array, or inconsistent shapes.
        """
        folder = Path(path)
        meta_path = folder / "meta.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise DataFormatError(meta_path, None, f"expected a token-trie meta.json (TokenTrie.save), "
                                                   f"found: {err}") from None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise DataFormatError(meta_path, None, f"expected format {_FORMAT!r}, found {meta!r:.80}")
        arrays = {}
        for name in _ARRAYS:
            try:
                arrays[name] = np.load(folder / f"{name}.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
            except (OSError, ValueError) as err:
                raise DataFormatError(folder / f"{name}.npy", None, f"cannot read the trie array: {err}") from None
        n_nodes = arrays["value_ids"].shape[0]
        if (arrays["offsets"].shape != (n_nodes + 1,) or arrays["labels"].shape != (n_nodes - 1,)
                or int(arrays["offsets"][-1]) != n_nodes - 1 or n_nodes != meta.get("num_nodes")
                or int(arrays["value_offsets"][-1]) != arrays["value_bytes"].shape[0]):
            raise DataFormatError(folder, None, "inconsistent trie arrays (offsets / labels / value_ids sizes "
                                                "disagree with meta.json); rewrite it with TokenTrie.save")
        return cls(**arrays, max_length=int(meta.get("max_length", 0)))


class TrieBuilder:
    """Collects ``add(key, value)`` calls, then :meth:`build` makes the :class:`TokenTrie` (spec §9 API)."""

    def __init__(self) -> None:
        self._keys: list[list[int]] = []
        self._values: list[str] = []

    def add(self, key: Sequence[int], value: str = "") -> None:
        """Add the token-id sequence ``key`` with ``value`` (a duplicate key keeps its first value)."""
        self._keys.append([int(t) for t in key])
        self._values.append(str(value))

    def build(self) -> TokenTrie:
        """The immutable trie of everything added so far."""
        return TokenTrie.build(self._keys, self._values)
