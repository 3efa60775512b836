"""STS defaults sweep (issue 9): choose `kexue train sts`'s learning rate, λ, batch size and warm-up on DEV.

all-MiniLM-L6-v2, CoSENT, mean pooling (last-avg), stsb_en, one epoch, the full train split. Stage 1 sweeps the
learning rate over ``--lrs`` with every seed of ``--seeds``; stage 2 (``--variants``) trains variants of one
setting (``key=value`` lists over ``lr``, ``scale``, ``batch_size``, ``warmup_ratio``) with ``--variant-seeds``.
Selection is on the dev Spearman (the best dev checkpoint of each run); test is reported beside it but never
used to choose. Each run's results are cached as JSON under ``--work`` so the sweep can be run in pieces
(``--report-only`` rewrites the section from the cache).

Writes section ``sts-defaults`` of docs/RESULTS.md. Example (about 3 minutes per run with bf16 on one core):
    python bench/sts_defaults.py --lrs 3e-6 5e-6 1e-5 2e-5 --seeds 1 2 3 --precision bf16 \\
        --variants "lr=5e-6,scale=10" "lr=5e-6,batch_size=64" --variant-seeds 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import provenance, write_section  # noqa: E402

from kexue.tasks.sts import STSConfig, train_sts  # noqa: E402
from kexue.train import TrainerConfig  # noqa: E402

BASE = {"lr": 2e-5, "scale": 20.0, "batch_size": 32, "warmup_ratio": 0.1}
CASTS = {"lr": float, "scale": float, "batch_size": int, "warmup_ratio": float}


def parse_setting(text: str, base: dict) -> dict:
    """``"lr=5e-6,scale=10"`` -> a full setting (``base`` updated); raises SystemExit on an unknown key."""
    setting = dict(base)
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in CASTS:
            raise SystemExit(f"--variants: unknown key {key!r} (expected one of {', '.join(CASTS)})")
        setting[key] = CASTS[key](value)
    return setting


def key_of(setting: dict, seed: int, precision: str) -> str:
    return (f"lr{setting['lr']:g}-s{setting['scale']:g}-b{setting['batch_size']}-w{setting['warmup_ratio']:g}"
            f"-{precision}-seed{seed}")


def run(setting: dict, seed: int, args: argparse.Namespace) -> dict:
    """Train one setting (cached in ``args.work``); returns ``{"dev", "test", "train_seconds", "steps"}``."""
    key = key_of(setting, seed, args.precision)
    cached = args.work / f"{key}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    if args.report_only:
        raise SystemExit(f"--report-only: run {key} is not in {args.work}")
    cfg = STSConfig(model="minilm", data="stsb_en", loss="cosent", pooling="last-avg", max_length=64,
                    scale=setting["scale"], eval_before=False)
    with tempfile.TemporaryDirectory(prefix="kexue-sts-defaults-") as tmp:
        tcfg = TrainerConfig(output_dir=Path(tmp), epochs=1, batch_size=setting["batch_size"],
                             learning_rate=setting["lr"], warmup_ratio=setting["warmup_ratio"], weight_decay=0.01,
                             max_grad_norm=1.0, seed=seed, precision=args.precision, progress_bar=False,
                             metric_for_best="spearman")
        res = train_sts(cfg, tcfg, log=print)
    out = {"setting": setting, "seed": seed, "dev": res["after"]["dev"]["spearman"],
           "test": res["after"]["test"]["spearman"], "train_seconds": res["train_seconds"],
           "steps": res["optimizer_steps"]}
    cached.write_text(json.dumps(out))
    print(json.dumps(out), flush=True)
    return out


def fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def row(name: str, runs: list[dict]) -> str:
    s = runs[0]["setting"]
    return (f"| {name} | {s['lr']:g} | {s['scale']:g} | {s['batch_size']} | {s['warmup_ratio']:g} | "
            f"{','.join(str(r['seed']) for r in runs)} | {fmt([r['dev'] for r in runs])} | "
            f"{fmt([r['test'] for r in runs])} | {statistics.mean(r['train_seconds'] for r in runs):.0f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lrs", nargs="+", default=["3e-6", "5e-6", "1e-5", "2e-5"],
                   help="learning rates; LR@S1,S2 trains that rate only with seeds S1,S2 (e.g. a clearly worse one)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--variants", nargs="*", default=[], help="key=value,... settings for stage 2")
    p.add_argument("--variant-seeds", type=int, nargs="+", default=[1])
    p.add_argument("--precision", default="bf16")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "kexue-bench-sts-defaults")
    p.add_argument("--report-only", action="store_true", help="only rewrite the section from cached runs")
    p.add_argument("--note", default="", help="a sentence appended to the section (e.g. what was cut)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    # Seed-major order: an interrupted sweep still has complete seeds for every learning rate.
    plan = {}
    for token in args.lrs:
        lr, _, seeds = token.partition("@")
        plan[float(lr)] = [int(s) for s in seeds.split(",")] if seeds else args.seeds
    stage1: dict[float, list[dict]] = {lr: [] for lr in plan}
    for seed in sorted({s for seeds in plan.values() for s in seeds}):
        for lr, seeds in plan.items():
            if seed in seeds:
                stage1[lr].append(run(dict(BASE, lr=lr), seed, args))
    rows = ["| stage | lr | λ | batch | warm-up | seeds | dev Spearman | test Spearman | train s |",
            "|---|---|---|---|---|---|---|---|---|"]
    rows += [row("lr sweep", runs) for runs in stage1.values()]
    best_lr = max(stage1, key=lambda lr: statistics.mean(r["dev"] for r in stage1[lr]))
    for text in args.variants:
        setting = parse_setting(text, dict(BASE, lr=best_lr))
        runs = [run(setting, seed, args) for seed in args.variant_seeds]
        rows.append(row("variant", runs))
    text = (f"## STS defaults: learning rate, λ, batch and warm-up on dev (all-MiniLM-L6-v2, CoSENT, stsb_en)\n\n"
            f"{provenance(' '.join(map(str, args.seeds)))}"
            f"- settings: 1 epoch over the full train split (5,749 pairs), mean pooling, max length 64, AdamW "
            f"(weight decay 0.01, clip 1.0), linear warm-up then decay, length bucketing, precision "
            f"{args.precision}; best dev checkpoint (evaluated at the epoch end) then test. Chosen on mean dev "
            f"Spearman; test is never used to choose. Best lr on dev: {best_lr:g}. Zero-shot (no training): dev "
            f"86.72, test 82.03.\n" + (f"- {args.note}\n" if args.note else "") + "\n" + "\n".join(rows) + "\n")
    print(text)
    print("wrote", write_section("sts-defaults", text))


if __name__ == "__main__":
    main()
