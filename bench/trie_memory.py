"""Trie memory: kexue's flat-array TokenTrie against a nested-dict trie of the same keys (the KgCLUE baseline's
kind, whose 20M-triple trie needs about 30 GB of RAM, https://kexue.fm/archives/8802).

Key sets:
- KgCLUE: the answer triples of train + dev + test_public (the 20.6M-triple knowledge base is not available here),
  keys ``S [SEP] P [SEP] M`` (subject, predicate, sense) as token ids of a character vocabulary trained on those
  texts, value O;
- random: ``--random-keys`` keys of uniform length in [``--min-length``, ``--max-length``] over a 21128-token
  vocabulary (BERT-Chinese's size), value "".

Memory: TokenTrie = the bytes of its numpy arrays (all it stores; values included); nested dict = the Python heap
growth measured by tracemalloc while building it (dicts only: the token ints and value strings already exist in
the inputs, so they are not counted for it, which favours the dict; its build time includes tracemalloc's
overhead). Lookup: mean time of ``next_tokens`` over 20,000 random key prefixes, one thread.

Usage: python bench/trie_memory.py [--random-keys 1000000] [--min-length 4] [--max-length 16] [--seed 0]
    [--data $KEXUE_DATA]
Writes the "trie_memory" section of docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import provenance, write_section  # noqa: E402

VOCAB = 21128


def kgclue_keys(data_root: Path) -> tuple[list[list[int]], list[str]]:
    """Keys ``S [SEP] P [SEP] M`` and values O of the KgCLUE answer triples (train + dev + test_public)."""
    from kexue.data.readers.seq2seq import load_kgclue
    from kexue.data.tokenization import Tokenizer

    triples = [e for split in ("train", "dev", "test") for e in load_kgclue("kgclue", split, root=data_root)]
    texts = sorted({t for e in triples for t in (e.subject, e.predicate, e.mention) if t})
    tokenizer = Tokenizer.train_new(texts, kind="char")
    ids = {t: row[1:-1] for t, row in zip(texts, tokenizer(texts, truncation=False)["input_ids"])}
    ids[""] = []
    sep = tokenizer.sep_token_id
    keys = [[*ids[e.subject], sep, *ids[e.predicate], sep, *ids[e.mention]] for e in triples]
    return keys, [e.obj for e in triples]


def random_keys(n: int, low: int, high: int, seed: int) -> tuple[list[list[int]], list[str]]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(low, high + 1, n)
    flat = rng.integers(0, VOCAB, int(lengths.sum())).tolist()
    bounds = np.concatenate(([0], np.cumsum(lengths))).tolist()
    return [flat[bounds[i]:bounds[i + 1]] for i in range(n)], [""] * n


def dict_trie(keys, values) -> dict:
    root: dict = {}
    for key, value in zip(keys, values):
        node = root
        for t in key:
            node = node.setdefault(t, {})
        node.setdefault(None, value)
    return root


def dict_next(root: dict, prefix) -> list[int]:
    node = root
    for t in prefix:
        node = node.get(t)
        if node is None:
            return []
    return sorted(t for t in node if t is not None)


def measure(name: str, keys, values, seed: int) -> dict:
    from kexue.generation import TokenTrie

    t0 = time.perf_counter()
    trie = TokenTrie.build(keys, values)
    build_csr = time.perf_counter() - t0
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    root = dict_trie(keys, values)
    build_dict = time.perf_counter() - t0
    dict_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    rng = random.Random(seed)
    prefixes = []
    for _ in range(20000):
        key = keys[rng.randrange(len(keys))]
        prefixes.append(key[:rng.randrange(len(key) + 1)])
    assert all(trie.next_tokens(p) == dict_next(root, p) for p in prefixes[:2000])  # same structure
    t0 = time.perf_counter()
    for p in prefixes:
        trie.next_tokens(p)
    look_csr = (time.perf_counter() - t0) / len(prefixes) * 1e6
    t0 = time.perf_counter()
    for p in prefixes:
        dict_next(root, p)
    look_dict = (time.perf_counter() - t0) / len(prefixes) * 1e6
    del root
    gc.collect()
    return {"name": name, "keys": len(trie), "nodes": trie.num_nodes, "csr": trie.nbytes, "dict": dict_bytes,
            "build_csr": build_csr, "build_dict": build_dict, "look_csr": look_csr, "look_dict": look_dict}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--random-keys", type=int, default=1_000_000)
    parser.add_argument("--min-length", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("KEXUE_DATA", "../shared/data")))
    args = parser.parse_args()
    rows = [measure("KgCLUE answers (train+dev+test_public)", *kgclue_keys(args.data), args.seed)]
    rows.append(measure(f"random, {args.random_keys:,} keys, length {args.min_length}-{args.max_length}",
                        *random_keys(args.random_keys, args.min_length, args.max_length, args.seed), args.seed))
    mb = 1 / 2**20
    lines = ["## Trie memory: flat-array TokenTrie vs nested-dict trie", "",
             "Same keys in both; memory = numpy array bytes (TokenTrie, values included) vs tracemalloc heap "
             "growth of the dict trie (dicts only; its build time is under tracemalloc); lookup = mean `next_tokens` time over 20,000 random key "
             "prefixes. Target (issue 12): TokenTrie <= 1/10 of the dict trie.", "",
             "| keys | distinct keys | nodes | TokenTrie MiB | dict trie MiB | ratio | build s (trie / dict) | "
             "next_tokens µs (trie / dict) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['keys']:,} | {r['nodes']:,} | {r['csr'] * mb:.1f} | {r['dict'] * mb:.1f} | "
                     f"1/{r['dict'] / r['csr']:.1f} | {r['build_csr']:.2f} / {r['build_dict']:.2f} | "
                     f"{r['look_csr']:.1f} / {r['look_dict']:.1f} |")
    lines += ["", "The KgCLUE keys come from the answer triples only (the 20.6M-triple knowledge base is not "
              "shipped), tokenised with a character vocabulary trained on their texts; bytes per node: TokenTrie "
              f"{rows[-1]['csr'] / rows[-1]['nodes']:.1f}, dict trie {rows[-1]['dict'] / rows[-1]['nodes']:.0f} "
              "(random keys).", "", provenance(args.seed)]
    text = "\n".join(lines)
    print(text)
    write_section("trie_memory", text)


if __name__ == "__main__":
    main()
