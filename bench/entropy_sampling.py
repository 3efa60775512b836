"""Fixed-entropy sampling (https://kexue.fm/archives/8829) next to top-p on a tiny LM: an add-one smoothed
character bigram model of sst2 training sentences. Prints each sampler's per-step entropy (mean, std) and the
first sampled characters (docs/analysis.md).

    KEXUE_DATA=../shared/data OMP_NUM_THREADS=1 .venv/bin/python bench/entropy_sampling.py --n-iter 8
"""

from __future__ import annotations

import argparse
import math

import torch

from kexue.analysis import EntropyWarper, entropy
from kexue.data.readers.classification import load_classification


def top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering of one row of logits: keep the smallest prefix of sorted tokens with mass >= p."""
    probs = torch.softmax(logits, -1)
    sorted_p, order = probs.sort(descending=True)
    keep = order[sorted_p.cumsum(-1) - sorted_p < p]
    out = torch.full_like(logits, -math.inf)
    out[keep] = logits[keep]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=5000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--target-entropy", type=float, default=1.5)
    parser.add_argument("--n-iter", type=int, default=8)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    text = " ".join(e.text.lower() for e in load_classification("sst2", "train")[:args.sentences])
    chars = sorted(set(text))
    idx = {c: i for i, c in enumerate(chars)}
    counts = torch.ones(len(chars), len(chars), dtype=torch.float64)
    for a, b in zip(text, text[1:]):
        counts[idx[a], idx[b]] += 1
    table = torch.log(counts / counts.sum(1, keepdim=True))
    warper = EntropyWarper(args.target_entropy, n_iter=args.n_iter)
    samplers = {"raw distribution": lambda lg: lg, f"top-p {args.top_p}": lambda lg: top_p(lg, args.top_p),
                f"entropy {args.target_entropy} nats, {args.n_iter} steps": lambda lg: warper(None, lg[None])[0]}
    print(f"{len(chars)} characters, {len(text)} characters of text")
    for name, warp in samplers.items():
        gen = torch.Generator().manual_seed(args.seed)
        cur, entropies, out = idx["t"], [], []
        for _ in range(args.steps):
            lg = warp(table[cur])
            probs = torch.softmax(lg, -1)
            entropies.append(float(entropy(probs)))
            cur = int(torch.multinomial(probs, 1, generator=gen))
            out.append(chars[cur])
        h = torch.tensor(entropies)
        print(f"{name:32s} entropy per step mean {h.mean():.3f} std {h.std():.3f} | {''.join(out)[:60]!r}")
    off = (entropy(torch.softmax(warper(None, table), -1)) - args.target_entropy).abs() > 1e-4
    print(f"rows more than 1e-4 nats off the target: {int(off.sum())} of {len(chars)}")


if __name__ == "__main__":
    main()
