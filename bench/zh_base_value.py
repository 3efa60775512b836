"""What kexue's own Chinese base model buys: the same Chinese fine-tuning recipes at the same budget, from a random
initialisation of the same architecture vs from ``kexue-zh-mini``.

Both rows of a task run the same ``kexue train ...`` command (same data, budget, learning rate, seed); only ``--model``
differs: ``kexue-zh-mini`` or a folder holding the same config and tokenizer with RoFormerV2's random initialisation
(kexue.tasks.pretrain_model.roformer_v2_init_). Tasks: people_daily_ner and cluener2020 (GlobalPointer entity F1),
stsb_zh and afqmc (CoSENT Spearman), sentiment_zh (accuracy), duie2.0_subset (GPLinker triple F1). The articles'
BERT-base numbers stand beside ours as a different model (110M parameters, pretrained on GBs of text).

    python bench/zh_base_value.py --train-limit 3000 --epochs 2 --seeds 0

Writes the ``zh-base-value`` section of docs/RESULTS.md. DuIE is research-only data: its row is for this local table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import provenance, write_section  # noqa: E402

KEXUE = str(Path(sys.executable).with_name("kexue"))

# task -> (command, extra options, metric name, published (BERT-base: a different model))
TASKS = {
    "people_daily_ner": (["train", "ner"], ["--head", "global_pointer"], "entity F1 (test)",
                         "GlobalPointer 95.51 (BERT-base, 20,865 training sentences)"),
    "cluener2020": (["train", "ner"], ["--head", "global_pointer"], "entity F1 (dev)",
                    "GlobalPointer 80.03 (BERT-base, dev)"),
    "stsb_zh": (["train", "sts"], ["--loss", "cosent", "--pooling", "cls"], "Spearman (test)",
                "BERT+CoSENT 80.14 (BERT-base, own train split; spec §1 table)"),
    "afqmc": (["train", "sts"], ["--loss", "cosent", "--pooling", "cls"], "Spearman (dev: no labelled test here)",
              "CoSENT Spearman NOT FOUND; BERT-base afqmc classification accuracy 73.37 (RoFormerV2 CLUE table)"),
    "sentiment_zh": (["train", "classify"], [], "accuracy (test)", "full-data figure NOT FOUND; BERT-base fine-tuned on 1% labelled: 89.34 (PET article)"),
    "duie2.0_subset": (["train", "relation"], [], "triple F1 (fixed held-out 10% of train)",
                       "GPLinker 82.72 (BERT-base, DuIE v1 full)"),
}


def metric(task: str, res: dict) -> float:
    """The reported score (×100) of a run's results.json."""
    command = TASKS[task][0][1]
    if command in ("ner", "relation"):
        split = "test" if res.get("test") else "dev"
        return float(res[split]["f1"])
    if command == "sts":
        after = res["after"]
        return float((after.get("test") or after["dev"])["spearman"])
    after = res["after"]
    return float((after.get("test") or after["dev"])["accuracy"])


def random_twin(work: Path, seed: int) -> Path:
    """A folder with kexue-zh-mini's config and tokenizer and random RoFormerV2-initialised weights."""
    import torch

    from kexue.data.tokenization import Tokenizer
    from kexue.models import Transformer
    from kexue.tasks.pretrain_model import roformer_v2_init_

    folder = work / f"random-twin-{seed}"
    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(seed)
    config = Transformer.from_pretrained("kexue-zh-mini").config
    model = Transformer(config)
    roformer_v2_init_(model, config.num_hidden_layers)
    model.save_pretrained(folder)
    Tokenizer.from_pretrained("kexue-zh-mini").save_pretrained(folder)
    return folder


def run(task: str, model: str, seed: int, args: argparse.Namespace, work: Path) -> tuple[float, float]:
    command, extra, _, _ = TASKS[task]
    out = work / f"{task}-{Path(model).name}-{seed}"
    cmd = [KEXUE, *command, "--model", model, "--data", task, "--output", str(out), "--overwrite", "--no-progress",
           "--epochs", str(args.epochs), "--lr", str(args.lr), "--batch-size", str(args.batch_size), "--seed",
           str(seed), "--max-length", str(args.max_length), "--precision", args.precision, *extra]
    if args.train_limit:
        cmd += ["--train-limit", str(args.train_limit)]
    if args.eval_limit:
        cmd += ["--eval-limit", str(args.eval_limit)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    res = json.loads((out / "results.json").read_text())
    return metric(task, res), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=3000)
    parser.add_argument("--eval-limit", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="zh-base-value-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for task in args.tasks:
        scores: dict[str, list[float]] = {"random": [], "kexue-zh-mini": []}
        secs = []
        for seed in args.seeds:
            for name, model in (("random", str(random_twin(work, seed))), ("kexue-zh-mini", "kexue-zh-mini")):
                score, seconds = run(task, model, seed, args, work)
                scores[name].append(score)
                secs.append(seconds)
                print(f"{task} {name} seed {seed}: {score:.2f} ({seconds:.0f} s)", flush=True)
        r, k = (statistics.mean(scores[n]) for n in ("random", "kexue-zh-mini"))
        rows.append(f"| {task} | {TASKS[task][2]} | {fmt(scores['random'])} | {fmt(scores['kexue-zh-mini'])} | "
                    f"{k - r:+.2f} | {TASKS[task][3]} |")
        print(rows[-1], flush=True)
    table = "\n".join([
        "## Chinese recipes: random initialisation vs kexue-zh-mini (same architecture, same budget)", "",
        f"Same command for both columns; only `--model` differs (kexue-zh-mini, or its config and tokenizer with "
        f"RoFormerV2's random init). Budget: train limit {args.train_limit or 'full'}, eval limit "
        f"{args.eval_limit or 'full'}, {args.epochs} epoch(s), batch {args.batch_size}, lr {args.lr:g} for encoder "
        f"and heads alike (recipe defaults otherwise; not tuned per column), max length {args.max_length}, "
        f"{args.precision}; best checkpoint on dev. Reduced budget: the recipes' full training sets and epochs "
        "would take hours on 2 cores. The published column is BERT-base (110M parameters, full data): a different "
        "model, for scale only.", "",
        provenance(" ".join(map(str, args.seeds))), "",
        "| data | metric (x100) | random init | kexue-zh-mini | difference | published (BERT-base) |",
        "|---|---|---|---|---|---|", *rows, ""])
    print(table)
    write_section("zh-base-value", table)


def fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


if __name__ == "__main__":
    main()
