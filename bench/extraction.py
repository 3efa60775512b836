"""Extraction benchmark: NER heads on CoNLL-2003 with all-MiniLM-L6-v2, and the Chinese sets from scratch.

English (``--part en``): conll2003 (train -> best on valid -> test) with the ``minilm`` checkpoint and each head of
``--heads`` (GlobalPointer, Efficient GlobalPointer, CRF with and without the transition multiplier, softmax), same
budget. A randomly initialised head on a pretrained encoder wants a larger step than the encoder, so each head first
gets its own learning rate (``--head-lr``): a grid over ``--head-lrs`` on dev (``--grid-*`` budget, one seed), then
the final rows train each head at its best dev head learning rate with ``--seeds`` and report dev and test entity F1
(mean ± std) and training time per epoch. The articles publish no English numbers.

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
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import provenance, write_section  # noqa: E402

from kexue.tasks.event import EventConfig, train_event  # noqa: E402
from kexue.tasks.extraction_common import evaluate_examples, train_extraction  # noqa: E402
from kexue.tasks.extraction_data import limit_splits, load_extraction_splits  # noqa: E402
from kexue.tasks.ner import NerConfig, NerTask, entity_types, load_ner_model, train_ner  # noqa: E402
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


def trainer_config(out: Path, seed: int, args: argparse.Namespace, lr: float, epochs: int | None = None,
                   precision: str = "fp32") -> TrainerConfig:
    return TrainerConfig(output_dir=out, epochs=epochs or args.epochs, batch_size=args.batch_size, learning_rate=lr,
                         warmup_ratio=0.1, weight_decay=0.01, max_grad_norm=1.0, seed=seed, progress_bar=False,
                         metric_for_best="f1", precision=precision)


def conll_run(name: str, head_lr: float | None, seed: int, train_limit: int | None, dev_limit: int | None,
              test_limit: int | None, epochs: int, args: argparse.Namespace, work: Path, full,
              precision: str | None = None) -> dict:
    """One CoNLL-2003 run of head ``name`` (``head_lr`` None = the encoder's lr); ``test_limit=0`` skips test."""
    head, mult = EN_HEADS[name]
    splits = limit_splits(full, train_limit, None)
    dev = splits.dev if dev_limit is None else splits.dev[:dev_limit]
    test = None if test_limit == 0 else (splits.test if test_limit is None else splits.test[:test_limit])
    splits = dataclasses.replace(splits, dev=dev, test=test, description=(
        f"conll2003: train {len(splits.train)}, dev {len(dev)}, test {len(test) if test is not None else '-'}"))
    cfg = NerConfig(model="minilm", data="conll2003", head=head, crf_lr_multiplier=mult, max_length=args.max_length,
                    head_lr=head_lr)
    task = NerTask(entity_types(full.train), head, cfg.head_size, mult)
    precision = precision or args.precision
    out = work / f"en-{name}-{head_lr}-{seed}-{train_limit}-{epochs}-{precision}-test{test_limit}"
    return train_extraction(task, cfg, trainer_config(out, seed, args, args.lr, epochs, precision), splits, log=print)


def _lr_name(head_lr: float | None, lr: float) -> str:
    return f"{lr:g} (= --lr)" if head_lr is None else f"{head_lr:g}"


def run_en(args: argparse.Namespace, work: Path) -> str:
    full = load_extraction_splits("ner", "conll2003")
    grid_rows, rows, best_lr, finals, grid_scores, grid_runs = [], [], {}, {}, {}, {}
    # When the grid runs at the final budget, the grid's run of the chosen head lr is the final run of that seed:
    # its best checkpoint is evaluated on test instead of training it again (selection never saw test).
    reuse = (args.grid_train_limit == args.train_limit and args.grid_epochs == args.epochs
             and args.grid_seed in args.seeds)
    grid = [None if v == "same" else float(v) for v in args.head_lrs]
    for name in args.heads:
        scores = {}
        for head_lr in grid:
            res = conll_run(name, head_lr, args.grid_seed, args.grid_train_limit, args.dev_limit, 0, args.grid_epochs,
                            args, work, full)
            scores[head_lr] = res["dev"]["f1"]
            grid_runs[name, head_lr] = res
            print(f"grid {name} head_lr={head_lr}: dev F1 {scores[head_lr]:.2f}", flush=True)
        best_lr[name] = max(scores, key=lambda v: scores[v])
        grid_scores[name] = scores
        grid_rows.append(f"| {name} | " + " | ".join(f"{scores[v]:.2f}" for v in grid) + f" | "
                         f"{_lr_name(best_lr[name], args.lr)} |")
    for name in args.heads:
        runs = []
        for seed in args.seeds:
            if reuse and seed == args.grid_seed:
                res = dict(grid_runs[name, best_lr[name]])
                test = full.test if args.test_limit is None else full.test[:args.test_limit]
                res["test"] = evaluate_examples(load_ner_model(res["best_dir"]), test, 64)
                res["split"] = res["split"].replace("test -", f"test {len(test)}")
                runs.append(res)
            else:
                runs.append(conll_run(name, best_lr[name], seed, args.train_limit, args.dev_limit, args.test_limit,
                                      args.epochs, args, work, full))
        finals[name] = [r["test"]["f1"] for r in runs]
        split = runs[-1]["split"]
        rows.append(f"| {name} | {_lr_name(best_lr[name], args.lr)} | {mean_std([r['dev']['f1'] for r in runs])} | "
                    f"{mean_std(finals[name])} | {statistics.mean(r['seconds_per_epoch'] for r in runs):.0f} |")
        print(rows[-1], flush=True)
    check = []
    if args.precision_check and args.precision != "fp32":
        name = args.precision_check
        pair = [conll_run(name, best_lr[name], args.grid_seed, args.grid_train_limit, args.dev_limit, 0,
                          args.grid_epochs, args, work, full, precision="fp32")["dev"]["f1"],
                grid_scores[name][best_lr[name]]]
        check = [f"Precision check ({name}, grid budget, seed {args.grid_seed}, head lr "
                 f"{_lr_name(best_lr[name], args.lr)}): dev F1 fp32 {pair[0]:.2f} vs {args.precision} {pair[1]:.2f}.", ""]
    ranked = sorted(finals, key=lambda n: statistics.mean(finals[n]), reverse=True)
    winner = (f"Best head on test: **{ranked[0]}** ({statistics.mean(finals[ranked[0]]):.2f}), "
              f"{statistics.mean(finals[ranked[0]]) - statistics.mean(finals[ranked[1]]):.2f} F1 ahead of "
              f"{ranked[1]} ({statistics.mean(finals[ranked[1]]):.2f})." if len(ranked) > 1 else "")
    grid_head = " | ".join(_lr_name(v, args.lr) for v in grid)
    return "\n".join([
        "## Extraction: CoNLL-2003 NER heads (all-MiniLM-L6-v2), each head at its own learning rate", "",
        f"Data: {split} (test = the full CoNLL-2003 test split unless a limit is stated). Same budget for every head: "
        f"{args.epochs} epoch(s), batch {args.batch_size}, encoder lr {args.lr}, head lr chosen per head on dev "
        f"(`--head-lr`, grid below), max_length {args.max_length}, AdamW, warm-up 10%, precision {args.precision}; "
        "best checkpoint on dev. `crf_lr1000`: CRF transitions re-parameterised with λ = 1000 on top of the head lr "
        "(https://kexue.fm/archives/7196). The articles publish no English numbers.", "",
        provenance(" ".join(map(str, args.seeds))),
        *( [f"- {args.note}"] if args.note else []), "",
        "| head | head lr | dev entity F1 | test entity F1 | train s / epoch |", "|---|---|---|---|---|", *rows, "",
        winner, "",
        f"Head learning-rate grid (dev entity F1; train {args.grid_train_limit}, {args.grid_epochs} epoch(s), dev "
        f"{args.dev_limit or 'full'}, seed {args.grid_seed}"
        + ("; the grid runs at the final budget, so the final row of this seed is the grid run of the chosen head "
           "lr, its best checkpoint evaluated on test" if reuse else "") + "):", "",
        f"| head | {grid_head} | chosen |", "|---|" + "---|" * (len(grid) + 1), *grid_rows, "", *check])


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
    parser.add_argument("--head-lrs", nargs="+", default=["same", "5e-4", "5e-3"],
                        help="English head learning-rate grid ('same' = the encoder's --lr)")
    parser.add_argument("--grid-train-limit", type=int, default=4000)
    parser.add_argument("--grid-epochs", type=int, default=1)
    parser.add_argument("--grid-seed", type=int, default=0)
    parser.add_argument("--dev-limit", type=int, default=None, help="English: first N dev sentences (grid and final)")
    parser.add_argument("--test-limit", type=int, default=None, help="English: first N test sentences (None: all)")
    parser.add_argument("--precision", default="fp32", help="English: fp32 or bf16 autocast")
    parser.add_argument("--precision-check", default=None, help="English: also train this head in fp32 at the grid "
                        "budget to compare with --precision")
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave docs/RESULTS.md alone")
    parser.add_argument("--note", default="", help="English: a line added to the section (what was cut)")
    parser.add_argument("--scratch-hidden", type=int, default=256)
    parser.add_argument("--scratch-layers", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kexue-bench-extraction-") as tmp:
        if args.part in ("en", "all"):
            table = run_en(args, Path(tmp))
            print(table)
            if not args.no_write:
                write_section("extraction-en", table)
        if args.part in ("zh", "all"):
            table = run_zh(args, Path(tmp))
            print(table)
            write_section("extraction-zh", table)


if __name__ == "__main__":
    main()
