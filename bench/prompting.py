"""Prompt learning on FewCLUE and the PET article's sentiment set: zero-shot PET, ordinary few-shot fine-tuning,
PET few-shot, P-tuning and NSP-BERT on the same folds, test_public accuracy mean ± std over folds, with the FewCLUE
README table (RoBERTa-wwm-ext base) and the article's sentiment table (https://kexue.fm/archives/7764,
https://kexue.fm/archives/8295, https://kexue.fm/archives/8671) beside ours.

    python bench/prompting.py --model kexue-zh-mini --tasks eprstmt tnews bustm --folds 0 1 2 3 4

Every method of a row uses the same model, the fold's ``train_k`` (labelled), ``dev_k`` (best checkpoint) and
``test_public``; ``--eval-limit`` evaluates a fixed random sample (seed 0) of dev and test. ``--model random`` runs on a
randomly initialised character-level BERT with MLM and NSP heads, labelled as such: a smoke run of the harness, not a
measurement; any other ``--model`` that cannot be found is an error before any work starts. Sentiment (``--sentiment``): the article's 1% split, patterns
P1-P5 zero-shot (P2-P5 written from the spec's glosses of the article's patterns), P1 few-shot and
semi-supervised, P-tuning.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import provenance, run_main, write_section  # noqa: E402

from kexue.errors import KexueError  # noqa: E402
from kexue.tasks.classification import ClassifyConfig, train_classify  # noqa: E402
from kexue.tasks.nsp_eval import evaluate_nsp_zeroshot  # noqa: E402
from kexue.tasks.pet import PETConfig, train_pet  # noqa: E402
from kexue.tasks.prompt_data import NSP_PRESETS, eval_subset, load_prompt_data, pattern_input  # noqa: E402
from kexue.tasks.ptuning import PTuningConfig, train_ptuning  # noqa: E402
from kexue.train import TrainerConfig  # noqa: E402

TASKS = ("eprstmt", "bustm", "ocnli", "csldcp", "tnews", "cluewsc", "iflytek", "csl", "chid")
METHODS = ("zero-shot", "finetune", "pet", "ptuning", "nsp")
#: FewCLUE README (commit 0018e30, test_public, RoBERTa-wwm-ext base; zero-shot: NEZHA-Gen GPT), spec §13
README = {"finetune": dict(eprstmt=73.7, bustm=61.1, ocnli=34.0, csldcp=28.6, tnews=43.6, cluewsc=50.2,
                           iflytek=29.6, csl=50.1, chid=15.0),
          "pet": dict(eprstmt=78.6, bustm=64.0, ocnli=43.9, csldcp=56.9, tnews=51.2, cluewsc=50.0, iflytek=35.1,
                      csl=55.0, chid=61.3),
          "ptuning": dict(eprstmt=88.5, bustm=65.4, ocnli=35.0, csldcp=44.4, tnews=48.2, cluewsc=51.0, iflytek=32.0,
                          csl=50.0, chid=57.6),
          "zero-shot": dict(eprstmt=54.8, bustm=50.0, ocnli=34.4, csldcp=26.23, tnews=25.3, cluewsc=50.0,
                            iflytek=27.7, csl=52.2, chid=57.6)}
#: the article's sentiment results, M2 = RoBERTa-wwm-ext base (valid / test), spec §6-§7
SENTIMENT_ARTICLE = {"P1 zero-shot": "85.17 / 84.27", "P2 zero-shot": "70.63 / 68.69", "P3 zero-shot": "58.55 / 59.12",
                     "P4 zero-shot": "81.81 / 82.28", "P5 zero-shot": "80.25 / 81.62", "P1 few-shot": "89.29 / 89.18",
                     "P1 semi-supervised": "90.09 / 89.76", "P-tuning": "89.81 / 89.75",
                     "fine-tuning (1%)": "88.93 / 89.34"}
ZERO_SHOT: dict[tuple[str, str], float] = {}
"""Zero-shot test accuracy recorded by a PET run (its model before training), reused by the zero-shot column."""
SENTIMENT_PATTERNS = {"P1": "{mask}满意。{text}", "P2": "{text}{mask}满意。", "P3": "{mask}好。{text}",
                      "P4": "{mask}理想。{text}", "P5": "感觉如何？{mask}满意。{text}"}


def random_model(folder: Path, seed: int) -> Path:
    """A random-init character BERT (hidden 64, 2 layers) with MLM, NSP and pooler over FewCLUE + sentiment text."""
    import torch

    from kexue.data.registry import data_root
    from kexue.data.tokenization import Tokenizer
    from kexue.models import Transformer, TransformerConfig

    root = data_root()
    texts = (root / "sentiment_zh" / "sentiment.train.data").read_text(encoding="utf-8").splitlines()
    for task in TASKS:
        texts += (root / "fewclue" / task / "train_few_all.json").read_text(encoding="utf-8").splitlines()
        texts += (root / "fewclue" / task / "test_public.json").read_text(encoding="utf-8").splitlines()
    tok = Tokenizer.train_new(texts + ["下面报导一则新闻。很满意不好差这是篇的？，关键词都对其中指的是一款类应用论文"],
                              kind="char", vocab_size=8000)
    torch.manual_seed(seed)
    model = Transformer(TransformerConfig(family="bert", vocab_size=tok.vocab_size, hidden_size=64,
                                          num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                                          max_position_embeddings=512, mlm=True, nsp=True, pooler=True,
                                          pad_token_id=tok.pad_token_id))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def trainer(out: Path, args: argparse.Namespace, lr: float) -> TrainerConfig:
    return TrainerConfig(output_dir=out, max_steps=args.max_steps, batch_size=args.batch_size, learning_rate=lr,
                         seed=args.seed, progress_bar=False, save_every=None, eval_every=args.eval_every,
                         metric_for_best="accuracy")


def write_tsv(folder: Path, data: str, fold: str, eval_limit: int | None) -> int:
    """The fold as train/dev/test tsv files for the fine-tuning baseline (dev/test: the same seed-0 samples as the
    prompt methods); returns the class count."""
    splits = load_prompt_data(data, fold)
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", splits.train), ("dev", eval_subset(splits.dev, eval_limit)),
                       ("test", eval_subset(splits.test, eval_limit))):
        lines = []
        for r in rows:
            fields = pattern_input(r)
            parts = [fields["text_a"]] + ([fields["text_b"]] if "text_b" in fields else [])
            lines.append("\t".join(p.replace("\t", " ").replace("\n", " ") or "-" for p in parts) + f"\t{r.label}")
        (folder / f"{name}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(splits.label_names)


def run_method(method: str, data: str, fold: str, model: str, work: Path, args,
               lr: float | None = None) -> tuple[float, float] | None:
    """(dev, test) accuracy of one method on one fold at learning rate ``lr`` (``None``: the method does not apply;
    zero-shot and NSP-BERT train nothing and ignore ``lr``)."""
    out = work / (f"{data.replace('/', '_')}-{fold}-{method}" + (f"-{lr:g}" if lr is not None else ""))
    common = dict(model=model, data=data, fold=fold, eval_limit=args.eval_limit, max_length=args.max_length)
    if method == "zero-shot":
        if (data, fold) in ZERO_SHOT:
            return ZERO_SHOT[(data, fold)]
        zero = train_pet(PETConfig(mode="zero-shot", **common), trainer(out, args, args.lr[0]), log=lambda _: None
                         )["zero_shot"]
        return zero["dev"], zero["test"]
    if method == "pet":
        res = train_pet(PETConfig(mode="few-shot", **common), trainer(out, args, lr), log=lambda _: None)
        ZERO_SHOT[(data, fold)] = res["zero_shot"]["dev"], res["zero_shot"]["test"]   # the model before training
        return res["best"]["dev"], res["best"]["test"]
    if method == "ptuning":
        res = train_ptuning(PTuningConfig(mode="few-shot", **common), trainer(out, args, lr), log=lambda _: None)
        return res["best"]["dev"], res["best"]["test"]
    if method == "nsp":
        task = data.split("/")[-1]
        if task not in NSP_PRESETS:
            return None
        scores = [evaluate_nsp_zeroshot(model, data, fold=fold, split=split, eval_limit=args.eval_limit,
                                        max_length=args.max_length)["accuracy"] for split in ("dev", "test")]
        return scores[0], scores[1]
    if data.endswith("chid"):
        return None                                              # a classifier head cannot read the candidates
    num = write_tsv(work / f"tsv-{data.replace('/', '_')}-{fold}", data, fold, args.eval_limit)
    cfg = ClassifyConfig(model=model, data=str(work / f"tsv-{data.replace('/', '_')}-{fold}"), num_labels=num,
                         max_length=args.max_length)
    res = train_classify(cfg, trainer(out, args, lr), log=lambda _: None)
    return res["after"]["dev"]["accuracy"], res["after"]["test"]["accuracy"]


def learning_rates(method: str, args: argparse.Namespace) -> list[float | None]:
    """The grid a method's learning rate is chosen from on the first fold's dev accuracy ([None]: nothing trained)."""
    if method in ("zero-shot", "nsp"):
        return [None]
    return list(args.ptuning_lr if method == "ptuning" else args.lr)


def choose(results: dict[float | None, tuple[float, float] | None]) -> float | None:
    """The learning rate with the best dev accuracy (ties: the first in grid order); None when nothing ran."""
    best, best_dev = None, float("-inf")
    for lr, res in results.items():
        if res is not None and res[0] > best_dev:
            best, best_dev = lr, res[0]
    return best


def cell(values: list[tuple[float, float] | None]) -> str:
    vals = [v[1] for v in values if v is not None]
    if not vals:
        return "—"
    if len(vals) == 1:
        return f"{vals[0]:.1f}"
    return f"{statistics.mean(vals):.1f} ± {statistics.stdev(vals):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="random", help="checkpoint with MLM + NSP heads, or 'random'")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--folds", nargs="+", default=["0", "1", "2", "3", "4"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, nargs="+", default=[5e-5, 2e-4, 1e-3],
                        help="PET and fine-tuning: the grid, each method's own value chosen on the first fold's dev")
    parser.add_argument("--ptuning-lr", type=float, nargs="+", default=[6e-4, 3e-3],
                        help="P-tuning: the grid, chosen likewise")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--eval-limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--sentiment", action="store_true", help="also the sentiment_zh table")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    for flag, values in (("--lr", args.lr), ("--ptuning-lr", args.ptuning_lr)):
        if any(not v > 0 for v in values):
            parser.error(f"{flag}: every value must be > 0, got {values}")
    unknown = [t for t in args.tasks if t not in TASKS]
    if unknown:
        parser.error(f"--tasks: unknown FewCLUE task(s) {unknown}; choose from {', '.join(TASKS)}")
    work = Path(tempfile.mkdtemp(prefix="kexue-bench-prompting-"))
    label = args.model
    from kexue.hub import resolve_model_path

    if args.model == "random":
        label = "random init (hidden 64, 2 layers, char vocab): a smoke run of the harness, not a measurement"
        args.model = str(random_model(work / "random-model", args.seed))
    else:
        try:
            folder = resolve_model_path(args.model)
        except KexueError as err:
            parser.error(f"--model {args.model!r}: {err}")
        if not (folder / "config.json").is_file():
            parser.error(f"--model {args.model!r}: {folder} has no config.json")
    start = time.perf_counter()
    rows, errors, chosen = {}, [], {}
    order = sorted(args.methods, key=lambda m: m != "pet")          # PET first: its run also gives zero-shot
    for task in args.tasks:
        for method in order:
            values = []
            for i, fold in enumerate(args.folds):
                grid = learning_rates(method, args) if i == 0 else [chosen[(task, method)]]
                tried = {}
                for lr in grid:
                    t0 = time.perf_counter()
                    try:
                        tried[lr] = run_method(method, f"fewclue/{task}", fold, args.model, work, args, lr)
                    except KexueError as err:
                        errors.append(f"{task} fold {fold} {method}: {err}")
                        tried[lr] = None
                    print(f"{task} fold {fold} {method} lr {lr}: dev/test {tried[lr]} "
                          f"({time.perf_counter() - t0:.0f} s)", flush=True)
                if i == 0:
                    chosen[(task, method)] = choose(tried)
                values.append(tried.get(chosen[(task, method)]))
            rows[(task, method)] = values
    md = ["## Prompt learning on FewCLUE (bench/prompting.py)", "", provenance(args.seed),
          f"- model: {label}", f"- budget: {args.max_steps} updates, batch {args.batch_size}, eval every {args.eval_every}, max length "
          f"{args.max_length}; eval on {'all' if args.eval_limit is None else f'a seed-0 sample of {args.eval_limit}'}"
          f" dev/test examples; folds {', '.join(args.folds)}",
          f"- learning rates: each trained method's own, chosen per task on fold {args.folds[0]}'s dev accuracy from "
          f"{', '.join(f'{x:g}' for x in args.lr)} (PET, fine-tuning) and {', '.join(f'{x:g}' for x in args.ptuning_lr)}"
          " (P-tuning), then used on every fold: " + "; ".join(
              f"{t} {m} {lr:g}" for (t, m), lr in chosen.items() if lr is not None),
          f"- wall time: {time.perf_counter() - start:.0f} s", "",
          "test_public accuracy, mean ± std over folds (ours) | FewCLUE README (RoBERTa-wwm-ext base; its zero-shot "
          "row is NEZHA-Gen GPT). NSP-BERT: single-text tasks with a label prompt only.", "",
          "| task | " + " | ".join(args.methods) + " |", "|---|" + "---|" * len(args.methods)]
    for task in args.tasks:
        cells = [f"{cell(rows[(task, m)])} \\| {README.get(m, {}).get(task, '—')}" for m in args.methods]
        md.append(f"| {task} | " + " | ".join(cells) + " |")
    if errors:
        md += ["", "Errors (a method that could not run on a task, with the reason):", ""]
        md += [f"- {e}" for e in errors]
    if args.sentiment:
        md += sentiment_table(args, work, chosen)
    text = "\n".join(md) + "\n"
    print(text)
    if not args.no_write:
        write_section("prompting", text)
    print(json.dumps({f"{t}/{m}": v for (t, m), v in rows.items()}))


def sentiment_table(args: argparse.Namespace, work: Path, chosen: dict) -> list[str]:
    """The article's sentiment rows at our model: P1-P5 zero-shot, P1 few-shot / semi-supervised, P-tuning,
    fine-tuning on the same 1% (valid / test accuracy), each trained method at the learning rate chosen for it on
    eprstmt (the FewCLUE sentiment task; the first grid value when eprstmt was not run)."""
    lr = {m: chosen.get(("eprstmt", m)) or learning_rates(m, args)[0] for m in ("pet", "ptuning", "finetune")}
    out = ["", "### sentiment_zh, 1% labelled (168 examples), valid / test accuracy", "",
           f"Learning rates (eprstmt's choices): PET {lr['pet']:g}, P-tuning {lr['ptuning']:g}, fine-tuning "
           f"{lr['finetune']:g}.", "",
           "| method | ours | article (RoBERTa-wwm-ext base) |", "|---|---|---|"]
    common = dict(model=args.model, data="sentiment_zh", eval_limit=args.eval_limit, max_length=args.max_length)
    runs = {f"{p} zero-shot": ("pet", dict(mode="zero-shot", pattern=t)) for p, t in SENTIMENT_PATTERNS.items()}
    runs.update({"P1 few-shot": ("pet", dict(mode="few-shot")), "P1 semi-supervised": ("pet", dict(
        mode="semi-supervised", unlabelled_limit=args.batch_size * args.max_steps)), "P-tuning": ("ptuning", {})})
    for name, (kind, extra) in runs.items():
        out_dir = work / f"sentiment-{name.replace(' ', '_')}"
        if kind == "pet":
            v = {**PRESET_WORDS, **extra} if "pattern" in extra else extra
            res = train_pet(PETConfig(**common, **v), trainer(out_dir, args, lr["pet"]), log=lambda _: None)
        else:
            res = train_ptuning(PTuningConfig(**common), trainer(out_dir, args, lr["ptuning"]), log=lambda _: None)
        acc = res["zero_shot"] if extra.get("mode") == "zero-shot" else res["best"]
        out.append(f"| {name} | {acc['dev']:.2f} / {acc['test']:.2f} | {SENTIMENT_ARTICLE[name]} |")
        print(out[-1], flush=True)
    num = 2
    folder = work / "tsv-sentiment"
    folder.mkdir(parents=True, exist_ok=True)
    splits = load_prompt_data("sentiment_zh")
    for split, rows in (("train", splits.train), ("dev", eval_subset(splits.dev, args.eval_limit)),
                        ("test", eval_subset(splits.test, args.eval_limit))):
        (folder / f"{split}.tsv").write_text("".join(f"{r.text_a}\t{r.label}\n" for r in rows), encoding="utf-8")
    res = train_classify(ClassifyConfig(model=args.model, data=str(folder), num_labels=num, max_length=args.max_length),
                         trainer(work / "sentiment-ft", args, lr["finetune"]), log=lambda _: None)
    out.append(f"| fine-tuning (1%) | {res['after']['dev']['accuracy']:.2f} / {res['after']['test']['accuracy']:.2f} "
               f"| {SENTIMENT_ARTICLE['fine-tuning (1%)']} |")
    return out


PRESET_WORDS = {"verbalizer": {"0": ["不"], "1": ["很"]}}


if __name__ == "__main__":
    run_main(main)
