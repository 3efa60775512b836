"""SimBERT benchmark: retrieval Spearman (pooler vectors, raw) before/after ``train simbert``, batched vs one-at-a-time
paraphrase generation speed (identical outputs under one seed), and generated examples with their scores.

Training data: simclue_sample's positive pairs (its test_public holds all of LCQMC test, so LCQMC is not evaluated).
Evaluation: raw cosine of the pooler vectors (P2, linear pooler, spec §3-§4) on ATEC test, BQ dev (its test is
unlabelled here), PAWSX test and STS-B test, first ``--eval-limit`` pairs of each; beside the published SimBERT V1 /
RoFormer-Sim V2 P2 raw values (base models trained for days on millions of private pairs: a scale reference, not a
like-for-like comparison). Writes section ``simbert`` of docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import provenance, write_section  # noqa: E402

import torch  # noqa: E402

from kexue.data.registry import load_pairs  # noqa: E402
from kexue.embeddings import SentenceEncoder  # noqa: E402
from kexue.tasks.simbert import SimBERTConfig, SimBERTModel, train_simbert  # noqa: E402
from kexue.tasks.simbert_generate import SimilarSentenceGenerator  # noqa: E402
from kexue.tasks.sts import evaluate_split  # noqa: E402
from kexue.train import TrainerConfig  # noqa: E402

SETS = (("atec", "test", "ATEC"), ("bq", "dev", "BQ"), ("pawsx_zh", "test", "PAWSX"), ("stsb_zh", "test", "STS-B"))
PUBLISHED = {"SimBERT V1 base, P2 raw (post 8321)": (38.93, 49.93, 14.52, 73.18),
             "RoFormer-Sim V2 base, P2 raw (post 8454)": (39.71, 50.80, 13.87, 73.47)}
EXAMPLES = ("怎么开通微信支付", "花呗逾期了会怎么样", "今天天气怎么样")


def retrieval(encoder: SentenceEncoder, limit: int) -> list[float]:
    return [evaluate_split(encoder, load_pairs(name, split)[:limit], where=f"{name} {split}")["spearman"]
            for name, split, _ in SETS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="kexue-zh-mini")
    parser.add_argument("--max-steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=32, help="pairs per batch (2 rows each)")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--eval-limit", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start_enc = SentenceEncoder.from_pretrained(args.model, pooling="pooler", max_length=args.max_length + 2)
    before = retrieval(start_enc, args.eval_limit)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SimBERTConfig(model=args.model, data="simclue_sample", eval_data="stsb_zh", max_length=args.max_length,
                            eval_limit=500, eval_before=False)
        tcfg = TrainerConfig(output_dir=Path(tmp) / "run", max_steps=args.max_steps, batch_size=args.batch_size,
                             learning_rate=args.lr, weight_decay=0.01, seed=args.seed, progress_bar=False,
                             save_every=None)
        t0 = time.perf_counter()
        results = train_simbert(cfg, tcfg)
        train_wall = time.perf_counter() - t0
        model = SimBERTModel.from_pretrained(Path(tmp) / "run")
    after = retrieval(model.encoder, args.eval_limit)
    gen = SimilarSentenceGenerator(model.backbone, model.encoder, args.max_length)
    n, steps = args.num_samples, args.max_length + 1
    t0 = time.perf_counter()
    batched = [gen.sample(s, n, top_p=0.95, max_new_tokens=steps, seed=args.seed) for s in EXAMPLES]
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = [[gen.sample(s, 1, top_p=0.95, max_new_tokens=steps, seed=args.seed, offset=i)[0] for i in range(n)]
              for s in EXAMPLES]
    t_single = time.perf_counter() - t0
    same = sum(a == b for rb, rs in zip(batched, single) for a, b in zip(rb, rs))
    total = n * len(EXAMPLES)

    names = " | ".join(label for _, _, label in SETS)
    md = ("## SimBERT: retrieval and paraphrase generation (`kexue train simbert`, https://kexue.fm/archives/8454)\n\n"
          + provenance(args.seed)
          + f"- model: `{args.model}` (kexue's own Chinese RoFormerV2, 4 layers x 256), trained {args.max_steps} "
            f"updates x {args.batch_size} pairs ({2 * args.batch_size} rows) on simclue_sample's positive pairs, "
            f"lr {args.lr:g}, max length {args.max_length}, similarity scale 30, no noise, no teacher; "
            f"{results['optimizer_steps']} updates, {train_wall:.0f} s wall (training + dev evaluations). Reduced "
            f"budget: the reference trains a base model for ~4 days on millions of pairs.\n"
          + f"- retrieval: raw cosine of the pooler vectors (P2), Spearman x100 on the first {args.eval_limit} pairs "
            f"of ATEC test, BQ dev, PAWSX test, STS-B test. LCQMC is left out: simclue_sample overlaps it.\n\n"
          + f"| model | {names} |\n|---|---|---|---|---|\n"
          + f"| `{args.model}` before (pooler from NSP pretraining) | " + " | ".join(f"{v:.2f}" for v in before) + " |\n"
          + f"| `{args.model}` + train simbert | " + " | ".join(f"{v:.2f}" for v in after) + " |\n"
          + "".join(f"| published: {k} | " + " | ".join(f"{v:.2f}" for v in vals) + " |\n"
                    for k, vals in PUBLISHED.items())
          + f"\n**Generation speed** ({len(EXAMPLES)} sentences x {n} candidates, top-p 0.95, up to {steps} tokens, "
            f"KV cache, one CPU thread): batched (one `generate` call per sentence) {total / t_batched:.1f} "
            f"candidates/s, one at a time {total / t_single:.1f} candidates/s ({t_single / t_batched:.1f}x); "
            f"identical candidates under seed {args.seed}: {same}/{total}.\n\n**Examples** (top 5 after dedup, "
            f"copies of the input dropped, re-ranked by the model's own cosine):\n\n")
    for text, cands in zip(EXAMPLES, batched):
        ranked = gen.rank(text, cands, keep=5)
        md += f"- {text}: " + "; ".join(f"{c.text} ({c.score:.3f})" for c in ranked) + "\n"
    print(md)
    if not args.no_write:
        write_section("simbert", md)


if __name__ == "__main__":
    main()
