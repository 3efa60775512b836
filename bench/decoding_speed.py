"""Decoding speed: UniLM generation with the key/value cache against re-encoding source + target at every step.

The uncached path is bert4keras' ``AutoRegressiveDecoder`` way (the whole ``[source][target so far]`` through the
model per step); the cached one encodes the source once and feeds one token per step
(:mod:`kexue.generation`). Both run :func:`kexue.generation.generate` on the same random RoFormer, the same
sources (batch 16 × source length 64, random ids, ``[CLS] … [SEP]``), greedy (beam 1) and beam 3, up to 32 target
tokens; the outputs must be identical (checked). tokens/s = generated target tokens (returned sequences, end
tokens included) per second of wall time, median of ``--repeats`` runs, one thread, fp32, eval mode.

Model sizes (``--sizes HIDDENxLAYERS,...``): 256x4 (the LM head over 21128 tokens is most of a cached step) and
384x6 (the width and depth of all-MiniLM-L6-v2, kexue's default model, with a Chinese-size vocabulary); heads = hidden / 64.

Usage: python bench/decoding_speed.py [--repeats 3] [--sizes 256x4,384x6] [--seed 0]
Writes the "decoding_speed" section of docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import provenance, write_section  # noqa: E402

BATCH, SOURCE, TARGET, VOCAB, END = 16, 64, 32, 21128, 102


def build_model(hidden: int, layers: int, seed: int):
    from kexue.models import Transformer, TransformerConfig

    torch.manual_seed(seed)
    config = TransformerConfig(family="roformer", vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers,
                               num_attention_heads=hidden // 64, intermediate_size=4 * hidden,
                               max_position_embeddings=512, mlm=True, hidden_dropout_prob=0.0,
                               attention_probs_dropout_prob=0.0)
    return Transformer(config).eval()


def sources(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(200, VOCAB, (BATCH, SOURCE), generator=g)
    ids[:, 0], ids[:, -1] = 101, END
    return ids


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="256x4,384x6", help="HIDDENxLAYERS models, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from kexue.generation import generate

    ids = sources(args.seed)
    rows = []
    for size in args.sizes.split(","):
        hidden, layers = (int(x) for x in size.split("x"))
        model = build_model(hidden, layers, args.seed)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        name = f"{layers} layers, hidden {hidden}, {hidden // 64} heads, FFN {4 * hidden}, {params:.1f}M params"
        for beams in (1, 3):
            options = dict(strategy="beam" if beams > 1 else "greedy", num_beams=beams, end_token_id=END,
                           max_new_tokens=TARGET)
            result = {}
            for cache in (True, False):
                seconds, out = timed(lambda: generate(model, ids, use_cache=cache, **options), args.repeats)
                result[cache] = (seconds, out)
            same = torch.equal(result[True][1].sequences, result[False][1].sequences)
            tokens = int(result[True][1].lengths.sum())
            rows.append((name, beams, tokens, result[True][0], result[False][0], same))
            print(f"{name}, beam {beams}: {tokens} tokens, cached {result[True][0]:.2f} s, uncached "
                  f"{result[False][0]:.2f} s, same outputs {same}", flush=True)
    lines = ["## Decoding speed: KV cache vs re-encoding (UniLM)", "",
             f"Random RoFormers (vocabulary {VOCAB}, tied MLM head), fp32, one thread; batch {BATCH} sources of "
             f"{SOURCE} tokens, up to {TARGET} target tokens; the uncached path re-encodes source + target at "
             f"every step but computes the LM head at the last position only (bert4keras computes it at every "
             f"position, which would make it slower still); median of {args.repeats} runs. Target (issue 12): "
             "cached >= 5x faster with identical outputs.", "",
             "| model | beams | target tokens | cached s | cached tokens/s | uncached s | uncached tokens/s | "
             "speed-up | same outputs |", "|---|---|---|---|---|---|---|---|---|"]
    for name, beams, tokens, cached, uncached, same in rows:
        lines.append(f"| {name} | {beams} | {tokens} | {cached:.2f} | {tokens / cached:.0f} | {uncached:.2f} | "
                     f"{tokens / uncached:.0f} | {uncached / cached:.1f}x | {'yes' if same else 'NO'} |")
    lines += ["", provenance(args.seed)]
    text = "\n".join(lines)
    print(text)
    write_section("decoding_speed", text)
    if not all(r[5] for r in rows):
        sys.exit("cached and uncached outputs differ")


if __name__ == "__main__":
    main()
