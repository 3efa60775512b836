"""sst2 with LoRA r = 8 in its standard (peft), symmetric, random-projection and additive forms at equal trainable
parameters (r(n + m) per target weight), accuracy and time per epoch ("梯度视角下的LoRA",
https://kexue.fm/archives/9590).

    python bench/lora_variants.py --train-limit 2000 --epochs 1 --seeds 0

All rows: MiniLM (all-MiniLM-L6-v2), targets ``qkv`` and ``attention.output``, scale 2 (peft's alpha = 2r), the same
lr, data, schedule and seed; the head trains in every row.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import provenance, write_section  # noqa: E402

from kexue.tasks.classification import ClassifyConfig, train_classify  # noqa: E402
from kexue.train import TrainerConfig  # noqa: E402

#: row name -> --lora-variant (None: peft's standard LoRA)
ROWS = {"standard (peft)": None, "symmetric": "symmetric", "random-projection": "random-projection",
        "additive": "additive"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS))
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--eval-limit", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--work", type=Path, default=Path("runs/bench-lora-variants"))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    lines = ["## LoRA variants on sst2 (https://kexue.fm/archives/9590)", "",
             f"MiniLM, r = {args.rank} on qkv + attention.output, lr {args.lr}, {args.epochs} epoch(s), train "
             f"limit {args.train_limit}, eval limit {args.eval_limit}, max length {args.max_length}.", "",
             "| form | trainable factor params | dev acc | test acc | s / epoch |", "|---|---|---|---|---|"]
    for row in args.rows:
        variant = ROWS[row]
        for seed in args.seeds:
            cfg = ClassifyConfig(model="minilm", data="sst2", lora_rank=args.rank, lora_variant=variant,
                                 train_limit=args.train_limit, eval_limit=args.eval_limit, max_length=args.max_length)
            tcfg = TrainerConfig(output_dir=args.work / f"{variant or 'peft'}-{seed}", epochs=args.epochs,
                                 batch_size=args.batch_size, learning_rate=args.lr, seed=seed, progress_bar=False,
                                 overwrite=True, metric_for_best="accuracy")
            start = time.perf_counter()
            res = train_classify(cfg, tcfg, log=lambda _m: None)
            per_epoch = (time.perf_counter() - start) / args.epochs
            params = (res["techniques"].get("lora_variant") or {}).get("factor_parameters", "peft: same r(n+m)")
            lines.append(f"| {row} (seed {seed}) | {params} | {res['after']['dev']['accuracy']:.2f} | "
                         f"{res['after'].get('test', {}).get('accuracy', float('nan')):.2f} | {per_epoch:.0f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines + ["", "Time per epoch includes the final dev/test evaluation.", "",
                              provenance(args.seeds)])
    print(text)
    if not args.no_write:
        write_section("lora-variants", text)


if __name__ == "__main__":
    main()
