"""TokenTrie: the spec §9 toy database, agreement with a nested-dict trie, save/load (and memory-mapped)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from kexue.errors import DataFormatError
from kexue.generation import TokenTrie, TrieBuilder

TOY = ["明月几时有", "明天会更好", "明天下雨", "明天下午开会", "明天下午放假", "明年见", "今夕是何年",
       "今天去哪里玩"]


def ids(text: str) -> list[int]:
    return [ord(c) for c in text]


def chars(tokens) -> set[str]:
    return {chr(t) for t in tokens}


@pytest.fixture()
def toy() -> TokenTrie:
    builder = TrieBuilder()
    for i, text in enumerate(TOY):
        builder.add(ids(text), f"v{i}")
    return builder.build()


def test_spec_toy_database(toy):
    assert chars(toy.next_tokens([])) == {"明", "今"}
    assert chars(toy.next_tokens(ids("明"))) == {"月", "天", "年"}
    assert chars(toy.next_tokens(ids("明天"))) == {"会", "下"}
    assert chars(toy.next_tokens(ids("明天下"))) == {"雨", "午"}
    assert {"".join(map(chr, k)) for k in toy.keys(ids("明天下午"))} == {"明天下午开会", "明天下午放假"}
    assert toy.next_tokens(ids("明年见")) == []  # a leaf
    assert toy.next_tokens(ids("后天")) == []
    assert toy.get(ids("明年见")) == "v5" and toy.get(ids("明年")) is None and toy.get(ids("后天"), "-") == "-"
    assert ids("明天下雨") in toy and ids("明天") not in toy
    assert len(toy) == 8 and toy.max_length == 6
    # nodes: 1 root + distinct prefixes (明 今 明月.. ) = 1 + 28
    assert toy.num_nodes == 1 + len({t[:i] for t in TOY for i in range(1, len(t) + 1)})


def nested_dict(keys, values):
    root: dict = {}
    for key, value in zip(keys, values):
        node = root
        for t in key:
            node = node.setdefault(t, {})
        node.setdefault(None, value)  # first value wins, like TokenTrie
    return root


def walk(node, prefix, out):
    for token, child in node.items():
        if token is None:
            out[tuple(prefix)] = child
        else:
            walk(child, prefix + [token], out)


def test_agrees_with_a_nested_dict_trie_on_random_keys():
    rng = random.Random(0)
    keys = [[rng.randrange(6) for _ in range(rng.randrange(0, 6))] for _ in range(400)]
    values = [f"x{i}" for i in range(len(keys))]
    trie = TokenTrie.build(keys, values)
    reference = nested_dict(keys, values)
    expected: dict = {}
    walk(reference, [], expected)
    assert len(trie) == len(expected)
    assert sorted(map(tuple, trie.keys())) == sorted(expected)
    for key, value in expected.items():
        assert trie.get(key) == value
    for key in keys:  # every prefix of every key: the same children
        for i in range(len(key) + 1):
            node = reference
            for t in key[:i]:
                node = node[t]
            assert trie.next_tokens(key[:i]) == sorted(t for t in node if t is not None)
            assert sorted(map(tuple, trie.keys(key[:i]))) == sorted(k for k in expected if list(k[:i]) == key[:i])


@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_round_trip(toy, tmp_path, mmap):
    toy.save(tmp_path / "trie")
    loaded = TokenTrie.load(tmp_path / "trie", mmap=mmap)
    for name in ("offsets", "labels", "value_ids", "value_offsets", "value_bytes"):
        assert np.array_equal(getattr(loaded, name), getattr(toy, name))
    if mmap:
        assert isinstance(loaded.labels, np.memmap)
    assert loaded.keys() == toy.keys()
    assert [loaded.get(ids(t)) for t in TOY] == [f"v{i}" for i in range(8)]
    assert loaded.max_length == toy.max_length


def test_load_refuses_what_is_not_a_trie(toy, tmp_path):
    with pytest.raises(DataFormatError, match="meta.json"):
        TokenTrie.load(tmp_path)
    toy.save(tmp_path / "t")
    (tmp_path / "t" / "labels.npy").unlink()
    with pytest.raises(DataFormatError, match="labels.npy"):
        TokenTrie.load(tmp_path / "t")
    toy.save(tmp_path / "u")
    np.save(tmp_path / "u" / "labels.npy", np.zeros(3, dtype=np.int32))
    with pytest.raises(DataFormatError, match="inconsistent"):
        TokenTrie.load(tmp_path / "u")
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "meta.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(DataFormatError, match="expected format"):
        TokenTrie.load(tmp_path / "v")


def test_storage_is_flat_arrays(toy):
    assert toy.labels.dtype == np.int32 and toy.value_ids.dtype == np.int32
    assert toy.offsets.shape == (toy.num_nodes + 1,) and toy.labels.shape == (toy.num_nodes - 1,)
    assert toy.nbytes == sum(a.nbytes for a in (toy.offsets, toy.labels, toy.value_ids, toy.value_offsets,
                                                 toy.value_bytes))


def test_duplicate_key_keeps_the_first_value_and_negative_ids_are_refused():
    trie = TokenTrie.build([[1, 2], [1, 2], [1]], ["a", "b", "c"])
    assert len(trie) == 2 and trie.get([1, 2]) == "a" and trie.get([1]) == "c"
    with pytest.raises(ValueError, match=">= 0"):
        TokenTrie.build([[1, -2]])
