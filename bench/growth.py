"""Growth: pretrain a small RoFormerV2, widen it x2 losslessly, continue; against the wide model from scratch.

https://kexue.fm/archives/8444 (spec §11). Every step goes through the command line:

1. ``kexue pretrain-corpus --output DIR/corpus.txt`` (if missing), read with ``--corpus-limit``;
2. ``kexue pretrain`` of the small model (``--hidden`` 128, ``--layers``, ``--heads``, FFN 4x, no NSP) for
   ``--small-steps`` updates;
3. ``kexue widen --factor 2 --mode heads`` of its ``last/`` (heads x2, same head size: exact with RoPE);
4. ``kexue pretrain --init-from`` the widened folder for ``--wide-steps`` updates (``--alpha-warmup-steps 0``:
   the trained model already has α = 1, a new warm-up would reset it to 0);
5. ``kexue pretrain`` of the wide architecture from scratch for the same total compute.

Compute: ``C = 6 · tokens · (non-embedding parameters + 0.15 · vocab · hidden)``, i.e. the 6·N·D rule with the
tied vocabulary projection counted at the ~15% masked positions only (where ``kexue pretrain`` computes it);
tokens = real (non-padding) tokens seen, from each run's results.json. The scratch run gets
``(C_small + C_continued) / (6 · per-token cost of the wide model)`` tokens, turned into updates with the tokens per
update measured in the continued run. Wall times are reported beside.

All runs in fp32 (so the held-out losses are exact fp32 numbers), one torch thread, the same seed, corpus, vocabulary
(the widened model keeps the small one's tokenizer; the scratch run rebuilds the same deterministic one) and
held-out set (1% of the documents, fixed masks). The loss right after widening is the continued run's "before"
(its own fp32 evaluation of the saved widened checkpoint) against the small run's final evaluation; the max
|Δ logit| of the MLM logits of the small and widened checkpoints on held-out sentences is checked too.

Usage: python bench/growth.py [--work /tmp/kexue-growth] [--corpus-limit 4000] [--small-steps 300]
    [--wide-steps 150]
Writes the "growth" section of docs/RESULTS.md and docs/growth_loss.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS, provenance, write_section  # noqa: E402

KEXUE = str(Path(sys.executable).with_name("kexue"))
PLOT = RESULTS.parent / "growth_loss.png"
MASKED = 0.15


def kexue(*argv: str) -> float:
    """Run one ``kexue`` command (1 thread); returns its wall seconds; raises with its stderr on failure."""
    start = time.perf_counter()
    proc = subprocess.run([KEXUE, *argv], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"})
    if proc.returncode:
        raise SystemExit(f"kexue {' '.join(argv)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    print(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "", file=sys.stderr, flush=True)
    return time.perf_counter() - start


def flops_per_token(config) -> float:
    """6 x (non-embedding parameters + the tied vocabulary projection at the masked 15%)."""
    h, i, n = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    non_embedding = n * (4 * h * h + 2 * h * i)          # RoFormerV2: bias-free, norm-free
    return 6.0 * (non_embedding + MASKED * config.vocab_size * config.embedding_width)


def curve(run: Path, results: dict, flops: float, flops_offset: float) -> list[tuple]:
    """``[(compute, mlm_loss)]`` of a run: its "before" point and every evaluation (tokens per update averaged)."""
    per_step = results["tokens_seen"] / results["optimizer_steps"]
    points = [(flops_offset, results["before"]["mlm_loss"])]
    for line in (run / "metrics.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "eval":
            points.append((flops_offset + event["step"] * per_step * flops, event["mlm_loss"]))
    return points


def logit_difference(small: Path, wide: Path, corpus: Path, n: int = 16) -> float:
    """Max |MLM logit difference| between the two checkpoints (fp32, eval) on the corpus' last ``n`` sentences."""
    from kexue.data.collate import pad_batch
    from kexue.data.tokenization import Tokenizer
    from kexue.models import Transformer

    tok = Tokenizer.from_pretrained(small)
    lines = [s for s in corpus.read_text(encoding="utf-8").splitlines() if s.strip()][-n:]
    batch = pad_batch([{"input_ids": ids} for ids in tok(lines, max_length=128)["input_ids"]],
                      pad_token_id=tok.pad_token_id)
    out = []
    for folder in (small, wide):
        model = Transformer.from_pretrained(folder).eval()
        with torch.no_grad():
            out.append(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).mlm_logits)
    mask = batch["attention_mask"].bool()
    return float((out[0] - out[1]).abs()[mask].max())


def plot(curves: dict[str, list[tuple]], widen_at: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=90)
    for label, points in curves.items():
        ax.plot([p[0] / 1e12 for p in points], [p[1] for p in points], marker=".", label=label)
    ax.axvline(widen_at / 1e12, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("training compute (TFLOP, 6·N·tokens)")
    ax.set_ylabel("held-out MLM loss")
    ax.set_title("Growth: small -> widen x2 (heads) -> continue vs wide from scratch", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOT)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a new temporary folder)")
    parser.add_argument("--corpus-limit", type=int, default=4000)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--small-steps", type=int, default=300)
    parser.add_argument("--wide-steps", type=int, default=150)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--alpha-warmup-steps", type=int, default=50)
    parser.add_argument("--max-tokens", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shared-note", default="machine shared with other jobs during the run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from kexue.models import Transformer

    start, cpu_start = time.perf_counter(), os.times()
    work = args.work or Path(tempfile.mkdtemp(prefix="kexue-growth-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.txt"
    if not corpus.is_file():
        kexue("pretrain-corpus", "--output", str(corpus))
    common = ["--corpus", str(corpus), "--corpus-limit", str(args.corpus_limit), "--no-nsp", "--precision", "fp32",
              "--max-tokens", str(args.max_tokens), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
              "--eval-every", str(args.eval_every), "--seed", str(args.seed), "--no-progress", "--overwrite",
              "--save-every", "100000"]
    h = args.hidden
    small_dir, widened, cont_dir, scratch_dir = (work / n for n in ("small", "widened", "continued", "scratch"))
    wall = {"small": kexue("pretrain", *common, "--output", str(small_dir), "--hidden-size", str(h),
                           "--num-layers", str(args.layers), "--num-heads", str(args.heads),
                           "--intermediate-size", str(4 * h), "--max-steps", str(args.small_steps),
                           "--alpha-warmup-steps", str(args.alpha_warmup_steps))}
    wall["widen"] = kexue("widen", "--model", str(small_dir / "last"), "--factor", "2", "--mode", "heads",
                          "--output", str(widened))
    wall["continued"] = kexue("pretrain", *common, "--output", str(cont_dir), "--init-from", str(widened),
                              "--max-steps", str(args.wide_steps), "--alpha-warmup-steps", "0")
    res = {name: json.loads((work / name / "results.json").read_text()) for name in ("small", "continued")}
    small_cfg = Transformer.from_pretrained(small_dir / "last").config
    wide_cfg = Transformer.from_pretrained(widened).config
    f_small, f_wide = flops_per_token(small_cfg), flops_per_token(wide_cfg)
    c_small = f_small * res["small"]["tokens_seen"]
    c_cont = f_wide * res["continued"]["tokens_seen"]
    per_step = res["continued"]["tokens_seen"] / res["continued"]["optimizer_steps"]
    scratch_steps = round((c_small + c_cont) / f_wide / per_step)
    wall["scratch"] = kexue("pretrain", *common, "--output", str(scratch_dir), "--hidden-size", str(2 * h),
                            "--num-layers", str(args.layers), "--num-heads", str(2 * args.heads),
                            "--intermediate-size", str(8 * h), "--max-steps", str(scratch_steps),
                            "--alpha-warmup-steps", str(args.alpha_warmup_steps))
    res["scratch"] = json.loads((scratch_dir / "results.json").read_text())
    max_logit = logit_difference(small_dir / "last", widened, corpus)
    curves = {"small (hidden %d)" % h: curve(small_dir, res["small"], f_small, 0.0),
              "widened x2, continued": curve(cont_dir, res["continued"], f_wide, c_small),
              "wide (hidden %d) from scratch" % (2 * h): curve(scratch_dir, res["scratch"], f_wide, 0.0)}
    plot(curves, c_small)
    cpu = os.times()
    cpu_minutes = (cpu.children_user + cpu.children_system - cpu_start.children_user - cpu_start.children_system
                   + cpu.user + cpu.system - cpu_start.user - cpu_start.system) / 60
    small_final = res["small"]["final"]["mlm_loss"]
    after = res["continued"]["before"]["mlm_loss"]
    rows = [("small", res["small"], c_small, wall["small"]),
            ("widened x2 + continued", res["continued"], c_small + c_cont, wall["small"] + wall["continued"]),
            ("wide from scratch", res["scratch"], f_wide * res["scratch"]["tokens_seen"], wall["scratch"])]
    lines = ["## Growth: small RoFormerV2 -> lossless widening x2 -> continued, vs the wide model from scratch", "",
             provenance(seed=args.seed),
             f"- corpus: `kexue pretrain-corpus --output {corpus}`, first {args.corpus_limit} documents "
             f"(`--corpus-limit`); {res['small']['train_examples']} training / {res['small']['heldout_examples']} "
             "held-out packed examples (max length 128), the same held-out set and masks for every run",
             f"- small: RoFormerV2 hidden {h}, {args.layers} layers, {args.heads} heads (head size "
             f"{small_cfg.head_size}), FFN {4 * h}, vocabulary {small_cfg.vocab_size}, no NSP; {args.small_steps} "
             f"updates; `kexue widen --factor 2 --mode heads` -> hidden {wide_cfg.hidden_size}, "
             f"{wide_cfg.num_attention_heads} heads (head size {wide_cfg.head_size}), FFN "
             f"{wide_cfg.intermediate_size}; continued {args.wide_steps} updates with `--init-from` "
             "(`--alpha-warmup-steps 0`, a new LR warm-up and decay); the wide model from scratch for "
             f"{scratch_steps} updates (same compute)",
             f"- common options: `{' '.join(common).replace(str(corpus), 'CORPUS')}`; residual warm-up "
             f"{args.alpha_warmup_steps} updates for the two new models; fp32, 1 torch thread",
             "- compute: C = 6 · tokens · (non-embedding parameters + 0.15 · vocab · hidden) (the tied vocabulary "
             f"projection only at the masked positions, as `kexue pretrain` computes it): {f_small / 6e3:.0f}k and "
             f"{f_wide / 6e3:.0f}k per-token parameters; tokens = real tokens seen (results.json)",
             f"- whole benchmark: {time.perf_counter() - start:.0f} s wall, {cpu_minutes:.1f} CPU minutes; "
             f"{args.shared_note}", "",
             "| held-out MLM loss (fp32) | value |", "|---|---|",
             f"| small model, final | {small_final:.6f} |",
             f"| widened model, before any update | {after:.6f} |",
             f"| difference | {after - small_final:+.2e} |",
             f"| max abs MLM logit difference, small vs widened checkpoint (16 held-out sentences) | {max_logit:.2e} |",
             "", "| run | updates | tokens seen | compute (TFLOP) | wall s | final held-out MLM loss | accuracy |",
             "|---|---|---|---|---|---|---|"]
    for name, r, c, seconds in rows:
        lines.append(f"| {name} | {r['optimizer_steps']} | {r['tokens_seen']:,} | {c / 1e12:.2f} | {seconds:.0f} | "
                     f"{r['final']['mlm_loss']:.4f} | {r['final']['mlm_accuracy']:.4f} |")
    lines += ["", f"![held-out MLM loss against compute]({PLOT.name})", "",
              "The widened + continued run's wall time counts the small run too (its compute is the sum); "
              "the article reports no numbers for growth (analytical only)."]
    text = "\n".join(lines) + "\n"
    print(text)
    write_section("growth", text)


if __name__ == "__main__":
    main()
