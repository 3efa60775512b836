"""SPACES benchmark: LCSTS ROUGE of the generator with/without sparse softmax and the copy head, plus CAIL format check.

For each of the four generator variants (``--loss ce`` / ``sparse-softmax`` × copy head off / on) and each seed of
``--seeds``, :func:`kexue.tasks.summarization.train_summarize` trains the UniLM generator on ``lcsts_clge``'s train
split (the first ``--train-limit`` pairs) at the same budget, keeps ``best/`` by teacher-forced dev token accuracy
(first ``--eval-limit`` dev pairs) and decodes the first ``--test-limit`` test texts (greedy, top-k 10 cut with the
sparse loss, under the predicted copy tags with the copy head); character ROUGE-1/2/L F1 (×100, ``rouge-score``,
:func:`kexue.tasks.summarization.char_rouge`). Rows give mean ± sample std over the seeds and every seed's value.
Baseline: the first ``--lead-chars`` characters of each text. Then the extract-then-generate pipeline end to end on
``cail2020_sfzy_sample`` (20 documents: a format check, not a result).

LCSTS is research-only data: these numbers stay internal. Writes section ``spaces`` of docs/RESULTS.md.
Source: https://kexue.fm/archives/8046 (SPACES), spec architecture_and_extraction.md §12.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import provenance, run_main, write_section  # noqa: E402

import torch  # noqa: E402

from kexue.errors import ConfigError  # noqa: E402

METRICS = ("rouge1", "rouge2", "rougeL")
VARIANTS = (("ce", False), ("sparse-softmax", False), ("ce", True), ("sparse-softmax", True))


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1; 0 for a single value) of ``values``."""
    if not values:
        raise ValueError("mean_std: no values")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(per_seed: dict[int, dict[str, float]]) -> dict[str, tuple[float, float]]:
    """``{metric: (mean, std)}`` over the seeds of ``{seed: {metric: value}}`` (every seed must have every metric)."""
    metrics = set.intersection(*(set(m) for m in per_seed.values())) if per_seed else set()
    return {k: mean_std([m[k] for m in per_seed.values()]) for k in sorted(metrics)}


def variant_name(loss: str, copy: bool) -> str:
    """Row label of a generator variant."""
    return f"loss {loss}, copy head {'on' if copy else 'off'}"


def trainer_cfg(out: Path, args, seed: int, max_steps: int | None = None, epochs: int | None = None):
    from kexue.train import TrainerConfig

    return TrainerConfig(output_dir=out, epochs=epochs or args.epochs, max_steps=max_steps or args.max_steps,
                         batch_size=args.batch_size, learning_rate=args.lr, warmup_ratio=0.05, weight_decay=0.01,
                         max_grad_norm=1.0, seed=seed, progress_bar=False, save_every=None,
                         metric_for_best="token_accuracy")


def summarize_cfg(args, data: str, loss: str, copy: bool, train_limit, test_limit, max_source_length: int):
    from kexue.tasks.seq2seq import Seq2SeqConfig
    from kexue.tasks.summarization import SummarizeConfig

    seq = Seq2SeqConfig(model=args.model, data=data, max_source_length=max_source_length,
                        max_target_length=args.max_target_length, loss=loss, sparse_k=10,
                        train_limit=train_limit, eval_limit=args.eval_limit)
    return SummarizeConfig(seq2seq=seq, copy=copy, noise=args.noise, num_beams=1, test_limit=test_limit)


def run_lcsts(args, log) -> tuple[dict, dict]:
    """``({variant: {seed: rouge}}, {variant: {seed: info}})`` for the four variants."""
    from kexue.tasks.summarization import train_summarize
    from kexue.tasks.summarization_extract import ExtractorConfig

    scores: dict[str, dict[int, dict[str, float]]] = {}
    info: dict[str, dict[int, dict]] = {}
    for loss, copy in VARIANTS:
        name = variant_name(loss, copy)
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                cfg = summarize_cfg(args, "lcsts_clge", loss, copy, args.train_limit, args.test_limit,
                                    args.max_source_length)
                start = time.perf_counter()
                r = train_summarize(cfg, ExtractorConfig(), trainer_cfg(Path(tmp) / "run", args, seed),
                                    log=lambda m: None)
                seconds = time.perf_counter() - start
            scores.setdefault(name, {})[seed] = {k: r["test_rouge"][k] for k in METRICS}
            info.setdefault(name, {})[seed] = {"steps": r["optimizer_steps"], "train": r["train"],
                                               "test": r["test_texts"], "seconds": seconds,
                                               "dev_acc": r["dev_metrics"].get("token_accuracy")}
            log(f"{name} seed {seed}: " + " / ".join(f"{r['test_rouge'][k]:.2f}" for k in METRICS)
                + f" ({r['optimizer_steps']} steps, {seconds / 60:.1f} min, dev token acc "
                f"{info[name][seed]['dev_acc']:.4f})")
    return scores, info


def choose_lr(args, log) -> dict[float, float]:
    """Dev token accuracy of the ``ce``/no-copy generator at each ``--lr-check`` rate (first seed,
    ``--lr-check-steps`` steps); sets ``args.lr`` to the best one and returns ``{lr: accuracy}``."""
    from kexue.tasks.summarization import train_summarize
    from kexue.tasks.summarization_extract import ExtractorConfig

    accuracy = {}
    for lr in args.lr_check:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = summarize_cfg(args, "lcsts_clge", "ce", False, args.train_limit, 1, args.max_source_length)
            tcfg = trainer_cfg(Path(tmp) / "run", args, args.seeds[0], max_steps=args.lr_check_steps)
            tcfg.learning_rate = lr
            r = train_summarize(cfg, ExtractorConfig(), tcfg, log=lambda m: None)
        accuracy[lr] = r["dev_metrics"]["token_accuracy"]
        log(f"lr check {lr:g}: dev token accuracy {accuracy[lr]:.4f} after {r['optimizer_steps']} steps")
    args.lr = max(accuracy, key=lambda k: accuracy[k])
    return accuracy


def run_lead(args) -> tuple[dict[str, float], float]:
    """ROUGE of the first ``--lead-chars`` characters of each test text, and the test summaries' mean length."""
    from kexue.data.readers.seq2seq import load_seq2seq
    from kexue.tasks.summarization import char_rouge

    test = load_seq2seq("lcsts_clge", "test")[:args.test_limit]
    rouge = char_rouge([e.source[:args.lead_chars] for e in test], [e.target for e in test])
    return rouge, statistics.fmean(len(e.target) for e in test)


def run_cail(args, log) -> dict:
    """The extract-then-generate pipeline on ``cail2020_sfzy_sample`` (copy head and sparse softmax on)."""
    from kexue.tasks.summarization import train_summarize
    from kexue.tasks.summarization_extract import ExtractorConfig

    with tempfile.TemporaryDirectory() as tmp:
        cfg = summarize_cfg(args, "cail2020_sfzy_sample", "sparse-softmax", True, None, None, 256)
        cfg.seq2seq.max_target_length = 128
        start = time.perf_counter()
        r = train_summarize(cfg, ExtractorConfig(epochs=args.cail_extractor_epochs),
                            trainer_cfg(Path(tmp) / "run", args, args.seeds[0], epochs=args.cail_epochs), log=log)
        r["seconds"] = time.perf_counter() - start
    return r


def fmt(mean: float, std: float) -> str:
    return f"{mean:.2f} ± {std:.2f}"


def markdown(args, scores, info, lead, lead_len, cail) -> str:
    seeds = ", ".join(map(str, args.seeds))
    first = next(iter(info.values()))[args.seeds[0]] if info else None
    md = ["## SPACES: LCSTS generator ablation (sparse softmax, copy head) and the CAIL pipeline format check", "",
          provenance(seeds).rstrip(), ""]
    md += ["Full budget (the script's defaults): `python bench/spaces.py` (all 8,666 train pairs, 3 epochs, source 128, "
           "1,000 test texts, seeds 42 43); the command above is the reduced one that ran, when it differs.", ""]
    if args.note:
        md += [args.note, ""]
    if args.lr_checked:
        md += [f"Learning rate {args.lr:g} chosen by dev token accuracy (ce, no copy head, seed {args.seeds[0]}, "
               f"{args.lr_check_steps} steps): " + ", ".join(f"lr {k:g}: {100 * v:.2f}" for k, v in
                                                         args.lr_checked.items()) + ".", ""]
    if first:
        about = (" (kexue's own pretrained Chinese RoFormerV2 4×256, MLM+NSP on 7M tokens)"
                 if args.model == "kexue-zh-mini" else "")
        md += [f"Model `{args.model}`{about} in every row; generator trained on the first {first['train']} "
               f"lcsts_clge train pairs, {first['steps']} steps "
               f"of batch {args.batch_size}, lr {args.lr:g} (warm-up 5 %), input noise {args.noise}, source ≤ "
               f"{args.max_source_length} / summary ≤ {args.max_target_length} tokens; best/ by dev token accuracy "
               f"(first {args.eval_limit} dev pairs); greedy decoding of the first {first['test']} test texts. "
               f"Character ROUGE F1 ×100 (rouge-score); mean ± sample std over seeds {seeds}, then each seed.", "",
               "| model | system | ROUGE-1 | ROUGE-2 | ROUGE-L | per seed (R-1 / R-2 / R-L) | min per run |",
               "|---|---|---|---|---|---|---|"]
        for name, per_seed in scores.items():
            agg = aggregate(per_seed)
            each = "; ".join(f"{s}: " + " / ".join(f"{per_seed[s][k]:.2f}" for k in METRICS) for s in per_seed)
            mins = statistics.fmean(i["seconds"] for i in info[name].values()) / 60
            md.append(f"| {args.model} | UniLM generator, {name} | " + " | ".join(fmt(*agg[k]) for k in METRICS)
                      + f" | {each} | {mins:.1f} |")
    if lead:
        md.append(f"| (none) | first {args.lead_chars} characters of the text (test summaries average "
                  f"{lead_len:.1f} characters) | " + " | ".join(f"{lead[k]:.2f}" for k in METRICS) + " | | |")
    md += ["", "SPACES publishes CAIL2020 numbers only (no LCSTS ablation): nothing to set beside these rows."]
    if cail:
        md += ["", f"**CAIL2020 sfzy sample: format check only** (`cail2020_sfzy_sample`, 20 documents; model "
               f"`{args.model}`, clause encoder kexue-zh-mini frozen, DGCNN extractor {args.cail_extractor_epochs} "
               f"epochs, 2-fold out-of-fold extractions, generator {cail['optimizer_steps']} steps with sparse "
               f"softmax and the copy head; {cail['seconds'] / 60:.1f} min): the pipeline ran end to end on "
               f"{cail['train']} training / {cail['dev']} dev documents and scored its {cail['test_texts']} dev "
               "summaries at ROUGE-1/2/L " + " / ".join(f"{cail['test_rouge'][k]:.2f}" for k in METRICS)
               + ". Four dev documents say nothing about quality."]
    return "\n".join(md)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="kexue-zh-mini")
    p.add_argument("--train-limit", type=int, default=None, help="lcsts_clge train pairs (default: all 8,666)")
    p.add_argument("--test-limit", type=int, default=1000, help="lcsts_clge test texts decoded (default: all)")
    p.add_argument("--eval-limit", type=int, default=256, help="dev pairs for best/ selection")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-steps", type=int, default=None, help="overrides --epochs")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--lr-check", type=float, nargs="*", default=[],
                   help="choose --lr among these by dev token accuracy first (ce, no copy head, first seed)")
    p.add_argument("--lr-check-steps", type=int, default=100)
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    p.add_argument("--max-source-length", type=int, default=128)
    p.add_argument("--max-target-length", type=int, default=32)
    p.add_argument("--noise", type=float, default=0.15)
    p.add_argument("--lead-chars", type=int, default=18)
    p.add_argument("--cail-epochs", type=int, default=3, help="generator epochs on the CAIL sample")
    p.add_argument("--cail-extractor-epochs", type=int, default=20)
    p.add_argument("--parts", nargs="+", choices=("lcsts", "lead", "cail"), default=["lcsts", "lead", "cail"])
    p.add_argument("--note", default="", help="a line for the section (e.g. the reduced budget and the full command)")
    p.add_argument("--no-write", action="store_true", help="print the section, leave docs/RESULTS.md alone")
    args = p.parse_args(argv)
    for flag, value in (("--train-limit", args.train_limit), ("--test-limit", args.test_limit),
                        ("--eval-limit", args.eval_limit), ("--epochs", args.epochs), ("--max-steps", args.max_steps),
                        ("--batch-size", args.batch_size), ("--lead-chars", args.lead_chars),
                        ("--max-source-length", args.max_source_length),
                        ("--lr-check-steps", args.lr_check_steps)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag}: expected an integer >= 1, got {value}")
    if not args.lr > 0:
        raise ConfigError(f"--lr: expected a number > 0, got {args.lr}")
    torch.set_num_threads(1)
    args.lr_checked = choose_lr(args, print) if args.lr_check and "lcsts" in args.parts else {}
    scores, info = run_lcsts(args, print) if "lcsts" in args.parts else ({}, {})
    lead, lead_len = run_lead(args) if "lead" in args.parts else (None, 0.0)
    cail = run_cail(args, print) if "cail" in args.parts else None
    md = markdown(args, scores, info, lead, lead_len, cail)
    print(md)
    if not args.no_write:
        write_section("spaces", md)


if __name__ == "__main__":
    run_main(main)
