"""Bi-encoder vs cross-encoder at equal data: CoSENT, Sentence-BERT and "Interact" x ATEC, BQ, LCQMC, PAWS-X (zh)
(+ AFQMC), test accuracy at the threshold searched on valid ("CoSENT(二)", https://kexue.fm/archives/8860).

Only AFQMC ships a train split here, so for the others a fixed training part is cut from the dev/valid file (never
from test): the file's labelled lines are shuffled with ``random.Random(0)``, the first ``--train-size`` become train
and the next ``--valid-size`` valid (threshold and checkpoint selection). Test is the set's own labelled test file;
BQ's test is unlabelled, so BQ's test is the next ``--valid-size`` lines of the same shuffled dev (disjoint); AFQMC:
train.txt / the first half of dev.txt / the second half (its test is unlabelled too). The same cut for all three
methods. ``--model`` names the encoders, each giving one row per method: ``scratch`` (the default) is a
random-initialised character-level encoder (size below), ``kexue-zh-mini`` kexue's own pretrained Chinese RoFormerV2,
or any alias / checkpoint folder (all weights fine-tuned); ``--lr`` one value for all or one per model. Scratch alone
writes the ``matching`` section of docs/RESULTS.md; with a pretrained model the section is ``matching-<model>`` (the
scratch-only section stays). ``--resume`` reuses runs recorded under ``--work`` with the same settings.

    python bench/matching.py --sets lcqmc --train-size 2000 --valid-size 1000 --epochs 1 --seeds 0
    python bench/matching.py --model scratch kexue-zh-mini --lr 5e-4 2e-4 --sets lcqmc bq --train-size 2000 --seeds 0

CoSENT and Sentence-BERT: ``train_sts`` (``loss=cosent`` / ``softmax``, last-avg pooling, cosine threshold on valid);
Interact: ``train_classify`` on ``[CLS] a [SEP] b [SEP]`` with the threshold on ``P(y = 1)`` searched on valid.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import provenance, run_main, write_section  # noqa: E402

from kexue.data.registry import data_root  # noqa: E402
from kexue.tasks.classification import ClassifyConfig, train_classify  # noqa: E402
from kexue.tasks.common import ScratchModel  # noqa: E402
from kexue.tasks.sts import STSConfig, train_sts  # noqa: E402
from kexue.train import TrainerConfig  # noqa: E402

#: (dev/valid file, test file or None, header lines, field columns) per set
SETS = {"atec": ("ATEC.valid.data", "ATEC.test.data", 0, (0, 1, 2)),
        "bq": ("dev.tsv", None, 0, (0, 1, 2)),
        "lcqmc": ("dev.txt", "test.txt", 0, (0, 1, 2)),
        "pawsx_zh": ("dev_2k.tsv", "test_2k.tsv", 1, (1, 2, 3)),
        "afqmc": ("dev.txt", None, 0, (0, 1, 2))}
#: the article's test accuracies (BERT base rows, spec matching_and_prompting §2); afqmc is not in the article
ARTICLE = {"cosent": {"atec": 85.81, "bq": 83.24, "lcqmc": 86.67, "pawsx_zh": 76.30},
           "sbert": {"atec": 84.93, "bq": 82.46, "lcqmc": 87.42, "pawsx_zh": 65.33},
           "interact": {"atec": 85.49, "bq": 83.88, "lcqmc": 87.80, "pawsx_zh": 81.30}}
METHODS = ("cosent", "sbert", "interact")
SCRATCH = ScratchModel(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=512,
                       vocab_size=6000)


def _read(path: Path, header: int, cols: tuple[int, int, int]) -> list[str]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines()[header:]:
        f = line.split("\t")
        if len(f) > max(cols) and f[cols[2]].strip() in ("0", "1"):
            rows.append("\t".join(f[c].strip() for c in cols))
    return rows


def make_cut(name: str, train_size: int, valid_size: int, out: Path) -> dict[str, Path]:
    """Write ``train.tsv``, ``valid.tsv``, ``test.tsv`` (``a \\t b \\t label``) of ``name`` under ``out``."""
    dev_file, test_file, header, cols = SETS[name]
    folder = data_root() / name
    out.mkdir(parents=True, exist_ok=True)
    rows = _read(folder / dev_file, header, cols)
    if name == "afqmc":
        half = len(rows) // 2
        parts = {"train": _read(folder / "train.txt", 0, cols)[:train_size], "valid": rows[:half][:valid_size],
                 "test": rows[half:]}
    else:
        random.Random(0).shuffle(rows)
        # a small dev file (PAWS-X: 2000) keeps valid (and BQ's test) whole and gives train the rest
        train_size = min(train_size, len(rows) - valid_size * (1 if test_file is not None else 2))
        parts = {"train": rows[:train_size], "valid": rows[train_size:train_size + valid_size]}
        parts["test"] = (_read(folder / test_file, header, cols) if test_file is not None
                         else rows[train_size + valid_size:train_size + 2 * valid_size])
    paths = {}
    for split, lines in parts.items():
        paths[split] = out / f"{split}.tsv"
        paths[split].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


def run_one(method: str, model: str, lr: float, paths: dict[str, Path], out: Path, args: argparse.Namespace,
            seed: int) -> dict:
    """Train ``method`` with encoder ``model`` at ``lr`` on one cut (or reuse its ``bench.json`` with
    ``--resume``); returns ``{"method", "model", "lr", "seed", "test_accuracy", "valid_accuracy", "seconds",
    "settings"}`` (accuracies x100 at the threshold searched on valid)."""
    settings = {"method": method, "model": model, "lr": lr, "seed": seed,
                "paths": {k: str(v) for k, v in paths.items()},
                **{k: getattr(args, k) for k in ("train_size", "valid_size", "test_limit", "epochs", "batch_size",
                                                 "max_length")}}
    record_path = out / "bench.json"
    if args.resume and record_path.is_file():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("settings") == settings and "valid_accuracy" in record:
            return record
    tcfg = TrainerConfig(output_dir=out, epochs=args.epochs, batch_size=args.batch_size, learning_rate=lr,
                         seed=seed, progress_bar=False, overwrite=True, save_every=None, eval_every=None,
                         metric_for_best="accuracy")
    start = time.perf_counter()
    if method == "interact":
        cfg = ClassifyConfig(model=model, data=str(paths["train"]), dev=str(paths["valid"]),
                             test=str(paths["test"]), max_length=2 * args.max_length, eval_limit=args.test_limit,
                             class_thresholds=True, scratch=SCRATCH)
        res = train_classify(cfg, tcfg, log=lambda _m: None)
        acc, valid = (res["after"][k]["accuracy_p1_threshold"] for k in ("test", "dev"))
    else:
        cfg = STSConfig(model=model, data=str(paths["train"]), dev=str(paths["valid"]), test=str(paths["test"]),
                        loss="cosent" if method == "cosent" else "softmax", max_length=args.max_length,
                        eval_limit=args.test_limit, eval_before=False, scratch=SCRATCH)
        res = train_sts(cfg, tcfg, log=lambda _m: None)
        acc, valid = (res["after"][k]["accuracy"] for k in ("test", "dev"))
    record = {"method": method, "model": model, "lr": lr, "seed": seed, "test_accuracy": float(acc),
              "valid_accuracy": float(valid),
              "seconds": time.perf_counter() - start, "settings": settings}
    record_path.write_text(json.dumps(record), encoding="utf-8")
    return record


def choose_lr(records: list[dict]) -> float:
    """The learning rate of the record with the best valid accuracy (ties: the earliest record)."""
    if not records:
        raise ValueError("choose_lr: no runs to choose from")
    return max(records, key=lambda r: (r["valid_accuracy"], -records.index(r)))["lr"]


def _describe(model: str, lr: float | None) -> str:
    at = f", lr {lr:g}" if lr is not None else ""
    if model == "scratch":
        return (f"`scratch` = a random-initialised char-level encoder (hidden {SCRATCH.hidden_size}, "
                f"{SCRATCH.num_hidden_layers} layers){at}")
    return f"`{model}` = that pretrained encoder, all weights fine-tuned by every method{at}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--model", nargs="+", default=["scratch"],
                        help="encoders, each a row per method: scratch (random init) or a checkpoint alias/folder")
    parser.add_argument("--train-size", type=int, default=5000)
    parser.add_argument("--valid-size", type=int, default=1000)
    parser.add_argument("--test-limit", type=int, default=None, help="evaluate only the first N valid/test pairs")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, nargs="+", default=[5e-4], help="one for all models or one per --model")
    parser.add_argument("--lr-grid", type=float, nargs="+", default=None,
                        help="instead of --lr: each (set, model, method) runs every value at the first seed and "
                             "keeps the one with the best valid accuracy for all seeds")
    parser.add_argument("--max-length", type=int, default=32, help="tokens per sentence (Interact: twice)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--work", type=Path, default=Path("runs/bench-matching"))
    parser.add_argument("--resume", action="store_true", help="reuse runs recorded under --work (same settings)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/RESULTS.md alone")
    args = parser.parse_args()
    if len(args.lr) not in (1, len(args.model)):
        parser.error(f"--lr: give one value or one per --model ({len(args.model)}), got {len(args.lr)}")
    for flag, values in (("--lr", args.lr), ("--lr-grid", args.lr_grid or [])):
        if any(not v > 0 for v in values):
            parser.error(f"{flag}: every value must be > 0, got {values}")
    lrs = dict(zip(args.model, args.lr * len(args.model) if len(args.lr) == 1 else args.lr))
    rows, chosen = [], {}
    for name in args.sets:
        paths = make_cut(name, args.train_size, args.valid_size, args.work / "cuts" / name)
        sizes = {s: sum(1 for _ in p.open(encoding="utf-8")) for s, p in paths.items()}
        for model in args.model:
            for method in args.methods:
                tag = f"{name}-{Path(model).name}-{method}"
                if args.lr_grid:
                    trials = [run_one(method, model, lr, paths, args.work / f"{tag}-{args.seeds[0]}-lr{lr:g}", args,
                                      args.seeds[0]) for lr in args.lr_grid]
                    chosen[tag] = choose_lr(trials)
                    print(f"{tag}: valid " + ", ".join(f"lr {r['lr']:g} {r['valid_accuracy']:.2f}" for r in trials)
                          + f" -> {chosen[tag]:g}", flush=True)
                for seed in args.seeds:
                    lr = chosen.get(tag, lrs[model])
                    if args.lr_grid and seed == args.seeds[0]:
                        row = dict(next(r for r in trials if r["lr"] == lr))      # the trial itself, not a rerun
                    else:
                        out = args.work / (f"{tag}-{seed}-lr{lr:g}" if args.lr_grid else f"{tag}-{seed}")
                        row = run_one(method, model, lr, paths, out, args, seed)
                    row.update(set=name, sizes=sizes)
                    rows.append(row)
                    print(json.dumps({k: v for k, v in row.items() if k != "settings"}), flush=True)
    pretrained = [Path(m).name for m in args.model if m != "scratch"]
    title = "## Bi-encoder vs cross-encoder (CoSENT(二), https://kexue.fm/archives/8860)"
    lr_note = ""
    if args.lr_grid:
        lr_note = (f" (lr: each set x method at its own value from {', '.join(f'{x:g}' for x in args.lr_grid)}, "
                   f"chosen on valid at seed {args.seeds[0]}: " + ", ".join(f"{k} {v:g}" for k, v in chosen.items())
                   + ")")
    test_cut = f", the first {args.test_limit} valid/test pairs evaluated" if args.test_limit else ""
    lines = [f"{title}: {', '.join(pretrained)}" if pretrained else title, "",
             f"Test accuracy x100 at the threshold searched on valid; ours = mean over seeds {args.seeds}; "
             + "; ".join(_describe(m, None if args.lr_grid else lrs[m]) for m in args.model) + lr_note + f"; {args.epochs} epoch(s), train "
             f"{args.train_size} / valid {args.valid_size} pairs cut from each set's dev file (seed-0 shuffle; "
             f"AFQMC: its train, dev halves as valid/test; BQ: test = a further disjoint dev slice), "
             f"max length {args.max_length}{test_cut}. Article: BERT-base, full train sets.", "",
             "| method | " + " | ".join(args.sets) + " |", "|---|" + "---|" * len(args.sets)]
    for model in args.model:
        for method in args.methods:
            cells = []
            for name in args.sets:
                accs = [r["test_accuracy"] for r in rows
                        if r["set"] == name and r["method"] == method and r["model"] == model]
                ref = ARTICLE.get(method, {}).get(name)
                mean = sum(accs) / len(accs) if accs else float("nan")
                cells.append(f"{mean:.2f} (article {ref:.2f})" if ref is not None else f"{mean:.2f}")
            lines.append(f"| {method} ({Path(model).name}) | " + " | ".join(cells) + " |")
    sizes = {r["set"]: r["sizes"] for r in rows}
    seconds = {m: sum(r["seconds"] for r in rows if r["model"] == m) for m in args.model}
    lines += ["", "Split sizes (pairs): " + "; ".join(f"{k} {v}" for k, v in sizes.items()),
              "Wall time of all runs (s): " + "; ".join(f"{Path(m).name} {t:.0f}" for m, t in seconds.items()), "",
              provenance(args.seeds)]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("matching-" + "-".join(pretrained) if pretrained else "matching", text)


if __name__ == "__main__":
    run_main(main)
