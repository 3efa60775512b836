"""STS benchmark: CoSENT vs the Sentence-BERT baselines, and kexue vs sentence-transformers' CoSENTLoss.

English (``--part en``): all-MiniLM-L6-v2 on stsb_en: zero-shot for every pooling; kexue CoSENT and cosine-MSE
(the Sentence-BERT regression baseline; STS-B's scores are graded, so the softmax classifier does not apply)
for each training pooling and seed; sentence-transformers' own ``CoSENTLoss`` trained by its own
``SentenceTransformerTrainer`` with the same model, data, pooling (mean) and hyper-parameters. Reports test
Spearman x100 (mean ± std over seeds) and training wall time per epoch.

Chinese (``--part zh``): models trained from scratch (character vocabulary built from the training texts, a
small randomly initialised BERT; no Chinese checkpoint is available on this machine) on stsb_zh and afqmc;
afqmc-trained models are also evaluated on atec, bq, lcqmc and pawsx_zh. The article's numbers (BERT-base /
RoBERTa-base, pretrained) are printed beside them.

Writes sections ``sts-en`` / ``sts-zh`` of docs/RESULTS.md. Run: ``python bench/sts.py --part en`` (about 30
minutes on 2 CPU cores with the defaults).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import provenance, write_section  # noqa: E402

from kexue.data.registry import load_pairs  # noqa: E402
from kexue.embeddings import SentenceEncoder  # noqa: E402
from kexue.metrics.sts import spearman  # noqa: E402
from kexue.models import resolve_model_path  # noqa: E402
from kexue.tasks.sts import STSConfig, evaluate_split, load_splits, train_sts  # noqa: E402
from kexue.train import TrainerConfig  # noqa: E402

# Article tables (spec matching_and_prompting.md §1): test Spearman x100, trained on each task's train split.
PUBLISHED = {
    "BERT-base + CoSENT": {"atec": 49.74, "bq": 72.38, "lcqmc": 78.69, "pawsx_zh": 60.00, "stsb_zh": 80.14},
    "Sentence-BERT (BERT-base)": {"atec": 46.36, "bq": 70.36, "lcqmc": 78.72, "pawsx_zh": 46.86, "stsb_zh": 66.41},
    "RoBERTa-base + CoSENT": {"atec": 50.81, "bq": 71.45, "lcqmc": 79.31, "pawsx_zh": 61.56, "stsb_zh": 81.13},
}


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def trainer_config(out: Path, seed: int, args: argparse.Namespace, precision: str | None = None) -> TrainerConfig:
    return TrainerConfig(output_dir=out, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                         warmup_ratio=0.1, weight_decay=0.01, max_grad_norm=1.0, seed=seed, progress_bar=False,
                         precision=precision or args.precision, metric_for_best="spearman")


def kexue_run(args: argparse.Namespace, work: Path, loss: str, pooling: str, precision: str, seed: int,
              cache: dict) -> dict:
    """One kexue training run (memoized in ``cache``)."""
    key = (loss, pooling, precision, seed)
    if key not in cache:
        cfg = STSConfig(model="minilm", data="stsb_en", loss=loss, pooling=pooling,
                        max_length=args.max_length, scale=args.scale, train_limit=args.train_limit, eval_before=False)
        cache[key] = train_sts(cfg, trainer_config(work / "-".join(map(str, key)), seed, args, precision), log=print)
    return cache[key]


def kexue_rows(args: argparse.Namespace, work: Path, loss: str, pooling: str, precision: str, cache: dict) -> str:
    """Train kexue with ``loss``/``pooling``/``precision`` for every seed; one table row."""
    dev_scores, test_scores, seconds = [], [], []
    for seed in args.seeds:
        res = kexue_run(args, work, loss, pooling, precision, seed, cache)
        dev_scores.append(res["after"]["dev"]["spearman"])
        test_scores.append(res["after"]["test"]["spearman"])
        seconds.append(res["train_seconds"] / args.epochs)
    name = {"cosent": "kexue CoSENT", "mse": "kexue Sentence-BERT (cosine MSE)",
            "softmax": "kexue Sentence-BERT (softmax)"}.get(loss, loss)
    if precision != "fp32":
        name += f" ({precision})"
    return (f"| {name} | {pooling} | {mean_std(dev_scores)} | {mean_std(test_scores)} | "
            f"{statistics.mean(seconds):.0f} |")


def sentence_transformers_run(seed: int, args: argparse.Namespace, work: Path) -> tuple[float, float]:
    """Train with sentence-transformers' CoSENTLoss and its trainer; returns (test spearman, train seconds)."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, losses, models
    from sentence_transformers.training_args import SentenceTransformerTrainingArguments

    path = str(resolve_model_path("minilm"))
    word = models.Transformer(path, max_seq_length=args.max_length)
    model = SentenceTransformer(modules=[word, models.Pooling(word.get_word_embedding_dimension(), "mean")],
                                device="cpu")
    train = load_pairs("stsb_en", "train")[: args.train_limit]
    data = Dataset.from_dict({"sentence1": [p.text_a for p in train], "sentence2": [p.text_b for p in train],
                              "score": [float(p.label) / 5.0 for p in train]})
    targs = SentenceTransformerTrainingArguments(
        output_dir=str(work / f"st-{seed}"), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr, warmup_ratio=0.1, weight_decay=0.01, max_grad_norm=1.0, seed=seed,
        save_strategy="no", report_to=[], logging_steps=50, use_cpu=True, disable_tqdm=True,
        dataloader_drop_last=False)
    trainer = SentenceTransformerTrainer(model=model, args=targs, train_dataset=data,
                                         loss=losses.CoSENTLoss(model, scale=args.scale))
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    test = load_pairs("stsb_en", "test")
    a = model.encode([p.text_a for p in test], normalize_embeddings=True, batch_size=128)
    b = model.encode([p.text_b for p in test], normalize_embeddings=True, batch_size=128)
    return spearman((a * b).sum(1), [p.label for p in test]), seconds


def part_en(args: argparse.Namespace, work: Path) -> str:
    rows = ["| model / loss | pooling | dev Spearman | test Spearman | train s/epoch |", "|---|---|---|---|---|"]
    splits = load_splits("stsb_en", with_train=False)
    for pooling in args.zero_shot_poolings:
        enc = SentenceEncoder.from_pretrained("minilm", pooling=pooling, max_length=args.max_length)
        dev, test = evaluate_split(enc, splits.dev), evaluate_split(enc, splits.test)
        rows.append(f"| zero-shot | {pooling} | {dev['spearman']:.2f} | {test['spearman']:.2f} | – |")
        print(rows[-1], flush=True)
    cache: dict = {}
    st_tests, st_seconds = [], []
    if args.sentence_transformers:
        # Interleave kexue's CoSENT (mean pooling) and sentence-transformers' run seed by seed, so that both
        # timings see the same machine load.
        for seed in args.seeds:
            kexue_run(args, work, "cosent", "last-avg", args.precision, seed, cache)
            score, sec = sentence_transformers_run(seed, args, work)
            st_tests.append(score)
            st_seconds.append(sec / args.epochs)
    for loss in args.losses:
        for pooling in args.train_poolings:
            rows.append(kexue_rows(args, work, loss, pooling, args.precision, cache))
            print(rows[-1], flush=True)
    for precision in args.extra_precisions:
        rows.append(kexue_rows(args, work, "cosent", args.train_poolings[0], precision, cache))
        print(rows[-1], flush=True)
    if args.sentence_transformers:
        tests, seconds = st_tests, st_seconds
        rows.append(f"| sentence-transformers CoSENTLoss | last-avg (mean) | – | {mean_std(tests)} | "
                    f"{statistics.mean(seconds):.0f} |")
        print(rows[-1], flush=True)
    head = (f"## STS-B (English), all-MiniLM-L6-v2\n\n{provenance(','.join(map(str, args.seeds)))}"
            f"- settings: {args.epochs} epoch(s), batch {args.batch_size} pairs, lr {args.lr}, warm-up 10%, "
            f"max length {args.max_length}, λ={args.scale}, precision {args.precision}"
            + (f", first {args.train_limit} training pairs" if args.train_limit else ", full train split")
            + "; best dev checkpoint evaluated on test; mean ± std over seeds.\n\n")
    return head + "\n".join(rows) + "\n"


def part_zh(args: argparse.Namespace, work: Path) -> str:
    rows = ["| train data | loss | model | dev | test | transfer (test or dev) |", "|---|---|---|---|---|---|"]
    plan = [("stsb_zh", ()), ("afqmc", ("atec", "bq", "lcqmc", "pawsx_zh"))]
    for data, extra in plan:
        for loss in args.zh_losses:
            results = []
            for seed in args.seeds:
                cfg = STSConfig(model="scratch", data=data, loss=loss, pooling="last-avg",
                                max_length=args.max_length, scale=args.scale, extra_eval=extra,
                                train_limit=args.zh_train_limit, eval_before=False)
                tcfg = trainer_config(work / f"zh-{data}-{loss}-{seed}", seed, args)
                tcfg.learning_rate = args.zh_lr
                tcfg.epochs = args.zh_epochs
                results.append(train_sts(cfg, tcfg, log=print))
            dev = mean_std([r["after"]["dev"]["spearman"] for r in results])
            test = (mean_std([r["after"]["test"]["spearman"] for r in results])
                    if "test" in results[0]["after"] else "no labels here")
            transfer = []
            for name in extra:
                split = "test" if "test" in results[0]["extra"][name] else "dev"
                transfer.append(f"{name} {split} {mean_std([r['extra'][name][split]['spearman'] for r in results])}")
            rows.append(f"| {data} | {loss} | from scratch (char vocab, 4L-256H) | {dev} | {test} | "
                        f"{'; '.join(transfer) or '–'} |")
            print(rows[-1], flush=True)
    pub = ["", "Published (article, pretrained 12-layer models, each trained on the task's own train split, test "
           "Spearman x100):", "", "| model | ATEC | BQ | LCQMC | PAWSX | STS-B |", "|---|---|---|---|---|---|"]
    for name, vals in PUBLISHED.items():
        pub.append(f"| {name} | " + " | ".join(f"{vals[k]:.2f}" for k in ("atec", "bq", "lcqmc", "pawsx_zh",
                                                                         "stsb_zh")) + " |")
    head = (f"## Chinese sentence pairs, models trained from scratch\n\n{provenance(','.join(map(str, args.seeds)))}"
            f"- settings: {args.zh_epochs} epoch(s), batch {args.batch_size}, lr {args.zh_lr}, max length "
            f"{args.max_length}, mean pooling; no Chinese checkpoint exists on this machine, so these are "
            "randomly initialised small BERTs trained only on the pairs (not comparable to the article's pretrained "
            "models; a user with bert-base-chinese runs the same command with --model).\n\n")
    return head + "\n".join(rows + pub) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=("en", "zh"), required=True)
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 3])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--scale", type=float, default=20.0)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads.")
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--zero-shot-poolings", nargs="+", default=["cls", "pooler", "last-avg", "first-last-avg"])
    p.add_argument("--train-poolings", nargs="+", default=["last-avg", "cls"])
    p.add_argument("--losses", nargs="+", default=["cosent", "mse"])
    p.add_argument("--extra-precisions", nargs="*", default=["bf16"],
                   help="Also train CoSENT (first training pooling) in these precisions.")
    p.add_argument("--no-sentence-transformers", dest="sentence_transformers", action="store_false")
    p.add_argument("--zh-losses", nargs="+", default=["cosent", "softmax"])
    p.add_argument("--zh-epochs", type=int, default=3)
    p.add_argument("--zh-lr", type=float, default=5e-4)
    p.add_argument("--zh-train-limit", type=int, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="kexue-bench-sts-") as tmp:
        text = part_en(args, Path(tmp)) if args.part == "en" else part_zh(args, Path(tmp))
    print(text)
    print("wrote", write_section(f"sts-{args.part}", text))


if __name__ == "__main__":
    main()
