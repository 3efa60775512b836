"""Extraction benchmark: NER heads on CoNLL-2003 with all-MiniLM-L6-v2, and the Chinese sets from scratch.

English (``--part en``): conll2003 (train -> best on valid -> test) with the ``minilm`` checkpoint and each head of
``--heads`` (GlobalPointer, Efficient GlobalPointer, CRF with and without the learning-rate multiplier, softmax), same
budget, ``--seeds`` seeds; reports test entity F1 (mean ± std) and training time per epoch. The articles publish no
English numbers.

Chinese (``--part zh``): no Chinese checkpoint is available on this machine, so a small BERT is trained from scratch on
each set's own text (character vocabulary): cluener2020 (train -> dev), people_daily_ner (train on the first 90% of
example.dev, select on its last 10%, test on example.test), duie2.0_subset (fixed 90/10 split of the 5000 texts),
duee1.0 (sample_data -> dev). The articles' numbers (pretrained BERT-base / RoBERTa-wwm-ext base, full training sets)
are printed beside them: the gap is what a pretrained Chinese checkpoint buys.

DuIE and DuEE are internal-use-only data: their numbers are for local tables; never ship the data.

Writes sections ``extraction-en`` / ``extraction-zh`` of docs/RESULTS.md. Full run (expensive on 2 CPU cores):
``python bench/extraction.py --part all --seeds 0 1 2 --epochs 3``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import provenance, write_section  # noqa: E402

from kexue.tasks.event import EventConfig, train_event  # noqa: E402
from kexue.tasks.ner import NerConfig, train_ner  # noqa: E402
from kexue.tasks.relation import RelationConfig, train_relation  # noqa: E402
from kexue.tasks.common import ScratchModel  # noqa: E402
from kexue.train import TrainerConfig  # noqa: E402

# name -> (head, crf_lr_multiplier)
EN_HEADS = {
    "global_pointer": ("global_pointer", 1.0),
    "efficient_global_pointer": ("efficient_global_pointer", 1.0),
    "crf": ("crf", 1.0),
    "crf_lr1000": ("crf", 1000.0),
    "softmax": ("softmax", 1.0),
}
# Spec architecture_and_extraction.md §2-§5 (BERT base unless stated; full training sets).
PUBLISHED = {
    "cluener2020": "BERT-base: CRF 79.51, GlobalPointer 80.03, Efficient GP 80.66 (dev F1)",
    "people_daily_ner": "BERT-base: CRF 95.46, GlobalPointer 95.51, Efficient GP 95.36 (test F1; train on 20,865 "
                        "sentences)",
    "duie2.0_subset": "DuIE v1 (LIC2019), BERT-base: GPLinker (GP) 82.72, GPLinker (EGP) 82.68, CasRel 82.20; "
                      "DuIE 2.0: NOT FOUND",
    "duee1.0": "NOT FOUND (article body unavailable; RoBERTa-wwm-ext base config)",
}
ZH_RUNS = [("cluener2020", "ner", "global_pointer"), ("cluener2020", "ner", "efficient_global_pointer"),
           ("people_daily_ner", "ner", "global_pointer"), ("duie2.0_subset", "relation", "gplinker_egp"),
           ("duee1.0", "event", "gplinker_egp")]


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def trainer_config(out: Path, seed: int, args: argparse.Namespace, lr: float) -> TrainerConfig:
    return TrainerConfig(output_dir=out, epochs=args.epochs, batch_size=args.batch_size, learning_rate=lr,
                         warmup_ratio=0.1, weight_decay=0.01, max_grad_norm=1.0, seed=seed, progress_bar=False,
                         metric_for_best="f1")


def run_en(args: argparse.Namespace, work: Path) -> str:
    rows = []
    for name in args.heads:
        head, mult = EN_HEADS[name]
        f1s, secs = [], []
        for seed in args.seeds:
            cfg = NerConfig(model="minilm", data="conll2003", head=head, crf_lr_multiplier=mult,
                            max_length=args.max_length, train_limit=args.train_limit, eval_limit=args.eval_limit)
            res = train_ner(cfg, trainer_config(work / f"en-{name}-{seed}", seed, args, args.lr), log=print)
            f1s.append(res["test"]["f1"])
            secs.append(res["seconds_per_epoch"])
            split = res["split"]
        rows.append(f"| {name} | {mean_std(f1s)} | {statistics.mean(secs):.0f} |")
    return "\n".join([
        "## Extraction: CoNLL-2003 NER heads (all-MiniLM-L6-v2)", "",
        f"Data: {split}. Same budget for every head: {args.epochs} epoch(s), batch {args.batch_size}, lr {args.lr}, "
        f"max_length {args.max_length}, AdamW, warm-up 10%; best checkpoint on dev. `crf_lr1000`: CRF transitions "
        "re-parameterised with λ = 1000 (https://kexue.fm/archives/7196). The articles publish no English numbers.",
        "", provenance(" ".join(map(str, args.seeds))),
        "| head | test entity F1 | train s / epoch |", "|---|---|---|", *rows, ""])


def run_zh(args: argparse.Namespace, work: Path) -> str:
    scratch = ScratchModel(hidden_size=args.scratch_hidden, num_hidden_layers=args.scratch_layers,
                           num_attention_heads=max(1, args.scratch_hidden // 64), intermediate_size=4 * args.scratch_hidden)
    rows = []
    for data, task, head in ZH_RUNS:
        if args.zh_sets and data not in args.zh_sets:
            continue
        f1s, secs, split, metric = [], [], "", ""
        for seed in args.seeds:
            common = dict(model="scratch", data=data, max_length=args.max_length, train_limit=args.train_limit,
                          eval_limit=args.eval_limit, scratch=scratch)
            tcfg = trainer_config(work / f"zh-{data}-{head}-{seed}", seed, args, args.zh_lr)
            if task == "ner":
                res = train_ner(NerConfig(head=head, **common), tcfg, log=print)
            elif task == "relation":
                res = train_relation(RelationConfig(**common), tcfg, log=print)
            else:
                res = train_event(EventConfig(**common), tcfg, log=print)
            split_name = "test" if res.get("test") else "dev"
            f1s.append(res[split_name]["f1"])
            secs.append(res["seconds_per_epoch"])
            split = res["split"]
            metric = {"ner": "entity F1", "relation": "triple F1", "event": "argument F1 (DuEE-style)"}[task]
            metric += f" on {split_name}"
        rows.append(f"| {data} | {head} | {split} | {metric} | {mean_std(f1s)} | {statistics.mean(secs):.0f} | "
                    f"{PUBLISHED[data]} |")
    return "\n".join([
        "## Extraction: Chinese sets, small BERT trained from scratch", "",
        f"No Chinese checkpoint on this machine: each model is a {args.scratch_layers}-layer, hidden-"
        f"{args.scratch_hidden} BERT with a character vocabulary built from that set's training text, randomly "
        f"initialised (no pre-training). {args.epochs} epoch(s), batch {args.batch_size}, lr {args.zh_lr}, "
        f"max_length {args.max_length}; best checkpoint on dev. The published column is pretrained BERT-base on the "
        "full training sets: a user with a Chinese checkpoint (`--model path/to/chinese-bert`) should expect numbers "
        "near it, not near ours. DuIE / DuEE are internal-use-only data.", "",
        provenance(" ".join(map(str, args.seeds))),
        "| data | head | split (examples) | metric | ours (from scratch) | train s / epoch | published (pretrained) |",
        "|---|---|---|---|---|---|---|", *rows, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["en", "zh", "all"], default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--heads", nargs="+", default=list(EN_HEADS), choices=list(EN_HEADS))
    parser.add_argument("--zh-sets", nargs="*", default=None, help="subset of the Chinese sets to run")
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--eval-limit", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5, help="English (pretrained) learning rate")
    parser.add_argument("--zh-lr", type=float, default=5e-4, help="Chinese (from scratch) learning rate")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--scratch-hidden", type=int, default=256)
    parser.add_argument("--scratch-layers", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kexue-bench-extraction-") as tmp:
        if args.part in ("en", "all"):
            table = run_en(args, Path(tmp))
            print(table)
            write_section("extraction-en", table)
        if args.part in ("zh", "all"):
            table = run_zh(args, Path(tmp))
            print(table)
            write_section("extraction-zh", table)


if __name__ == "__main__":
    main()
