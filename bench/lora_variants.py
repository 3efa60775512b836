"""sst2 with LoRA r = 8 in its standard (peft), symmetric, random-projection and additive forms at equal trainable
parameters (r(n + m) per target weight), each form at its own learning rate chosen on dev ("梯度视角下的LoRA",
https://kexue.fm/archives/9590).

    python bench/lora_variants.py --train-limit 2000 --eval-limit 1000 --epochs 1 --seeds 0 --lrs 5e-4 2e-3 5e-3

Every form runs the whole ``--lrs`` grid (all forms' grids before any extension); then a form whose best dev
accuracy (mean over seeds) sits at an edge of the grid gets one more point beyond that edge on the 1-2-5 ladder
(1e-3, 2e-3, 5e-3, 1e-2, ...), repeated while the best stays at the edge, at most ``--max-extend`` times (``0``: the
grid only). The chosen lr is the best dev mean (ties: the lower lr); test accuracy is reported at the chosen lr only.
All rows: MiniLM (all-MiniLM-L6-v2), targets ``qkv`` and ``attention.output``, scale 2 (peft's alpha = 2r), the same
data, schedule and seed(s); the head trains in every row. Time per epoch is the training loop alone (a hook around
each epoch; the dev/test passes are excluded). ``--resume`` reuses runs already recorded under ``--work``
(``bench.json`` per run) with the same settings.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import provenance, write_section  # noqa: E402

from kexue.tasks.classification import ClassifyConfig, train_classify  # noqa: E402
from kexue.train import Hook, TrainerConfig  # noqa: E402

#: row name -> --lora-variant (None: peft's standard LoRA)
ROWS = {"standard (peft)": None, "symmetric": "symmetric", "random-projection": "random-projection",
        "additive": "additive"}


class EpochTimer(Hook):
    """Seconds of each training epoch (``on_epoch_begin`` to ``on_epoch_end``: evaluation excluded)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, trainer, epoch):  # noqa: D102 (Hook API)
        self._start = time.perf_counter()

    def on_epoch_end(self, trainer, epoch):  # noqa: D102
        self.seconds.append(time.perf_counter() - self._start)


def ladder_step(lr: float, up: bool) -> float:
    """The next value above (``up``) or below ``lr`` on the 1-2-5 ladder: 5e-3 -> 1e-2 up, 5e-4 -> 2e-4 down.
    A value off the ladder moves to the nearest ladder value strictly beyond it. Raises ValueError for lr <= 0."""
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    exponent = math.floor(math.log10(lr))
    candidates = sorted(m * 10.0 ** e for e in range(exponent - 1, exponent + 2) for m in (1, 2, 5))
    if up:
        return next(c for c in candidates if c > lr * (1 + 1e-9))
    return next(c for c in reversed(candidates) if c < lr * (1 - 1e-9))


def run_one(row: str, lr: float, seed: int, args: argparse.Namespace) -> dict:
    """Train one form at one lr and seed (or reuse its record with ``--resume``); returns the run record."""
    variant = ROWS[row]
    out = args.work / f"{variant or 'peft'}-lr{lr:g}-{seed}"
    settings = {"row": row, "lr": lr, "seed": seed, "rank": args.rank, "train_limit": args.train_limit,
                "eval_limit": args.eval_limit, "epochs": args.epochs, "batch_size": args.batch_size,
                "max_length": args.max_length}
    record_path = out / "bench.json"
    if args.resume and record_path.is_file():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("settings") == settings:
            return record
    cfg = ClassifyConfig(model="minilm", data="sst2", lora_rank=args.rank, lora_variant=variant,
                         train_limit=args.train_limit, eval_limit=args.eval_limit, max_length=args.max_length)
    tcfg = TrainerConfig(output_dir=out, epochs=args.epochs, batch_size=args.batch_size, learning_rate=lr,
                         seed=seed, progress_bar=False, overwrite=True, metric_for_best="accuracy")
    timer = EpochTimer()
    start = time.perf_counter()
    res = train_classify(cfg, tcfg, log=lambda _m: None, extra_hooks=[timer])
    params = (res["techniques"].get("lora_variant") or {}).get("factor_parameters", "peft: same r(n+m)")
    record = {"settings": settings, "dev": res["after"]["dev"]["accuracy"],
              "test": res["after"].get("test", {}).get("accuracy", float("nan")), "params": params,
              "train_s_per_epoch": statistics.mean(timer.seconds), "total_s": time.perf_counter() - start}
    record_path.write_text(json.dumps(record), encoding="utf-8")
    return record


def run_lr(row: str, lr: float, runs: dict[float, list[dict]], args: argparse.Namespace) -> None:
    """Run (or reuse) every seed of one form at one lr into ``runs[lr]`` and print them."""
    runs[lr] = [run_one(row, lr, seed, args) for seed in args.seeds]
    for r in runs[lr]:
        print(f"{row} lr {lr:g} seed {r['settings']['seed']}: dev {r['dev']:.2f} test {r['test']:.2f} "
              f"train {r['train_s_per_epoch']:.0f} s/epoch", flush=True)


def extend(row: str, runs: dict[float, list[dict]], args: argparse.Namespace) -> None:
    """One more 1-2-5 step past the edge while the best dev lr of ``row`` is at an edge (``--max-extend`` times)."""
    for _ in range(args.max_extend):
        grid = sorted(runs)
        best = best_lr(runs)
        if len(grid) < 2 or best not in (grid[0], grid[-1]):
            return
        run_lr(row, ladder_step(best, up=best == grid[-1]), runs, args)


def best_lr(runs: dict[float, list[dict]]) -> float:
    """The lr of the highest mean dev accuracy over seeds (ties: the lowest lr)."""
    return max(sorted(runs), key=lambda lr: statistics.mean(r["dev"] for r in runs[lr]))


def _mean(records: list[dict], key: str) -> float:
    return statistics.mean(r[key] for r in records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--eval-limit", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lrs", type=float, nargs="+", default=[5e-4, 2e-3, 5e-3])
    parser.add_argument("--max-extend", type=int, default=1, help="edge extensions per form (0: grid only)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--work", type=Path, default=Path("runs/bench-lora-variants"))
    parser.add_argument("--resume", action="store_true", help="reuse runs recorded under --work")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if any(not lr > 0 for lr in args.lrs):
        parser.error(f"--lrs: every learning rate must be positive, got {args.lrs}")
    if args.max_extend < 0:
        parser.error(f"--max-extend: expected >= 0, got {args.max_extend}")
    sweeps: dict[str, dict[float, list[dict]]] = {row: {} for row in args.rows}
    for row in args.rows:               # the whole grid for every form first, then the edge extensions
        for lr in sorted(args.lrs):
            run_lr(row, lr, sweeps[row], args)
    for row in args.rows:
        extend(row, sweeps[row], args)
    all_lrs = sorted({lr for runs in sweeps.values() for lr in runs})
    lines = ["## LoRA variants on sst2 (https://kexue.fm/archives/9590)", "",
             f"MiniLM, r = {args.rank} on qkv + attention.output, scale 2, {args.epochs} epoch(s), batch "
             f"{args.batch_size}, train limit {args.train_limit}, eval limit {args.eval_limit} (dev = the first "
             f"{args.eval_limit or 'all'} of the 6,735-row dev split; test = the first "
             f"{min(872, args.eval_limit or 872)} of GLUE's labelled 872-row dev set), max length {args.max_length}, "
             f"seed(s) {args.seeds}. Each form's lr is chosen on dev over the grid {sorted(args.lrs)} (+ up to "
             f"{args.max_extend} 1-2-5 step(s) past an edge that wins); test is read at the chosen lr only.", "",
             "| form | trainable factor params | chosen lr | dev acc | test acc | train s / epoch (at chosen lr; "
             "min over the form's runs) |", "|---|---|---|---|---|---|"]
    for row, runs in sweeps.items():
        lr = best_lr(runs)
        rec = runs[lr]
        lines.append(f"| {row} | {rec[0]['params']} | {lr:g} | {_mean(rec, 'dev'):.2f} | {_mean(rec, 'test'):.2f} | "
                     f"{_mean(rec, 'train_s_per_epoch'):.0f}; "
                     f"{min(r['train_s_per_epoch'] for rs in runs.values() for r in rs):.0f} |")
    lines += ["", "Dev accuracy over the grid (mean over seeds; `-`: not run; train s / epoch in brackets):", "",
              "| form | " + " | ".join(f"lr {lr:g}" for lr in all_lrs) + " |", "|---|" + "---|" * len(all_lrs)]
    for row, runs in sweeps.items():
        cells = [f"{_mean(runs[lr], 'dev'):.2f} ({_mean(runs[lr], 'train_s_per_epoch'):.0f})" if lr in runs
                 else "-" for lr in all_lrs]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    text = "\n".join(lines + ["", provenance(args.seeds)])
    print(text)
    if not args.no_write:
        write_section("lora-variants", text)


if __name__ == "__main__":
    main()
