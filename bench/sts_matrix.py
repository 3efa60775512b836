"""The unsupervised sentence-vector matrix of "无监督语义相似度哪家强?" (https://kexue.fm/archives/8321) and
"中文任务还是SOTA吗?" (https://kexue.fm/archives/8348): model x pooling (P1 cls, P2 pooler, P3 last-avg, P4
first-last-avg) x {raw, whitening, whitening-k, SimCSE} x task, Spearman x100 of the cosines, published numbers
beside ours; and the Sohu 2021 multi-task matcher (https://kexue.fm/archives/8337) at a small budget.

Parts (each writes its own section of docs/RESULTS.md):

* ``--part en``: all-MiniLM-L6-v2 (``--model minilm``) on STS12–16 (SentEval "all" setting: a year's sub-sets
  concatenated) and the STS-B test split; encode-only. Whitening cells name their fitting data: ``task`` = the
  evaluated set's own sentences, both sides, no labels (the articles' transductive protocol); ``stsb-train`` = the
  STS-B training sentences (inductive, the same fit for every set).
* ``--part simcse``: unsupervised SimCSE (``kexue.tasks.simcse``, cls pooling, cross-view negatives, scale 20) on the
  first ``--simcse-sentences`` of wiki1m, ``--simcse-steps`` updates, for each ``--seeds``; the trained encoder is
  then evaluated like ``en`` (raw, every pooling): mean ± std over seeds.
* ``--part zh``: the five Chinese tasks (atec test, bq dev [its test is unlabelled], lcqmc test, pawsx_zh test,
  stsb_zh test; first ``--zh-limit`` pairs each) with the models kexue has for Chinese: all-MiniLM-L6-v2 (an English
  model; its vocabulary holds the CJK characters) and a randomly initialised character BERT (no Chinese pretrained
  model on this machine), whitening fitted on the task (transductive).
* ``--part match``: ``train match`` on afqmc, stsb_zh, simclue_sample: one model with conditional LayerNorm, one
  without, and one model per task; test accuracy / F1 per task and the Sohu 2021 fragments (``eval match``).

    python bench/sts_matrix.py --part en
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import provenance, write_section  # noqa: E402

from kexue.data.readers.semeval_sts import YEARS, read_semeval_all  # noqa: E402
from kexue.data.registry import data_root, load_pairs  # noqa: E402
from kexue.embeddings import SentenceEncoder  # noqa: E402
from kexue.embeddings.whitening import fit_whitening  # noqa: E402
from kexue.errors import ConfigError  # noqa: E402
from kexue.metrics.sts import spearman  # noqa: E402
from kexue.nn.pooling import pool  # noqa: E402
from kexue.tasks.common import SCRATCH, ScratchModel, build_backbone  # noqa: E402

POOLINGS = ("cls", "pooler", "last-avg", "first-last-avg")
P_ID = {"cls": "P1", "pooler": "P2", "last-avg": "P3", "first-last-avg": "P4"}
EN_SETS = (*YEARS, "STSB")
# spec §13: STS12 / 13 / 14 / 15 / 16 / STS-B (SICK-R not here)
PUBLISHED_EN = {
    "bert-base-uncased P4 raw (BERT-whitening-pytorch)": (57.85, 61.96, 62.50, 70.96, 69.79, 59.04),
    "bert-base-uncased P4 whitening-256 (BERT-whitening-pytorch, fit: NLI)": (63.90, 73.75, 69.09, 74.59, 74.42,
                                                                             71.43),
    "SBERT-base-NLI whitening-256 (BERT-whitening-pytorch)": (69.12, 79.31, 78.05, 81.65, 79.58, 80.74),
    "unsup. SimCSE bert-base-uncased P1 (princeton-nlp, Table 5)": (68.40, 82.41, 74.38, 80.91, 78.56, 72.23),
}
ZH_TASKS = (("atec", "test"), ("bq", "dev"), ("lcqmc", "test"), ("pawsx_zh", "test"), ("stsb_zh", "test"))
# spec §3, raw / whitening / whitening-256 / SimCSE, ATEC BQ LCQMC PAWSX STS-B
PUBLISHED_ZH = {
    "BERT-P1": ("16.59/20.61/25.58/33.14", "29.35/25.76/34.66/50.67", "41.71/48.92/49.18/69.99",
                "15.15/17.03/15.98/12.95", "34.65/61.19/60.07/69.04"),
    "BERT-P2": ("9.46/22.16/25.13/25.18", "16.97/18.97/33.99/41.19", "28.42/49.61/49.59/56.45",
                "13.93/16.08/16.19/12.46", "21.66/60.75/60.13/57.63"),
    "BERT-P3": ("20.79/18.27/28.98/32.89", "33.08/22.58/38.62/49.58", "59.22/60.12/62.00/71.83",
                "16.68/18.37/17.38/14.47", "57.48/63.97/68.27/70.08"),
    "BERT-P4": ("24.51/27.00/27.91/31.96", "38.81/32.29/37.67/48.40", "64.75/64.75/65.65/71.49",
                "15.12/17.80/15.34/16.01", "61.66/69.45/69.37/70.03"),
    "SimBERT-P1 (supervised)": ("38.50/23.64/30.79/36.98", "48.54/31.78/40.01/51.47", "76.23/75.05/74.50/74.87",
                                "15.10/18.49/15.64/12.66", "74.14/73.37/75.29/75.12"),
}


class AllPoolings(SentenceEncoder):
    """One forward pass, every pooling: the vectors of ``modes`` side by side (``[B, len(modes) * H]``)."""

    def __init__(self, encoder: SentenceEncoder, modes: tuple[str, ...]) -> None:
        super().__init__(encoder.backbone, encoder.tokenizer, "first-last-avg", encoder.max_length)
        self.modes = modes
        inner = getattr(self.backbone, "model", self.backbone)
        self.dense = getattr(getattr(inner, "pooler", None), "dense", None)

    @property
    def hidden_size(self) -> int:
        return len(self.modes) * int(self.backbone.config.hidden_size)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            output_hidden_states=True)
        return torch.cat([pool(out, attention_mask, m, pooler_dense=self.dense if m == "pooler" else None)
                          for m in self.modes], dim=-1)


def modes_of(encoder: SentenceEncoder) -> tuple[str, ...]:
    inner = getattr(encoder.backbone, "model", encoder.backbone)
    return POOLINGS if getattr(inner, "pooler", None) is not None else tuple(m for m in POOLINGS if m != "pooler")


def encode_modes(encoder: SentenceEncoder, texts: list[str]) -> dict[str, np.ndarray]:
    """``{pooling: [N, H] float64}`` for ``texts`` (one forward pass each)."""
    multi = AllPoolings(encoder, modes_of(encoder)).eval()
    flat = multi.encode(texts, batch_size=64).astype(np.float64)
    return dict(zip(multi.modes, np.split(flat, len(multi.modes), axis=1)))


def score(vecs: np.ndarray, index: dict[str, int], pairs, whitening=None) -> float:
    x = whitening.transform(vecs, normalize=True) if whitening is not None else \
        vecs / np.linalg.norm(vecs, axis=1, keepdims=True).clip(1e-12)
    a = x[[index[p.text_a] for p in pairs]]
    b = x[[index[p.text_b] for p in pairs]]
    return spearman((a * b).sum(1), [float(p.label) for p in pairs])


def en_sets() -> dict[str, list]:
    sets = {y: read_semeval_all(y) for y in YEARS}
    sets["STSB"] = load_pairs("stsb_en", "test")
    return sets


RANK_CAPPED: list[str] = []


def fit_full(x: np.ndarray, where: str, **kwargs):
    """The full whitening of ``x``; a rank-deficient covariance keeps its ``rank`` non-degenerate components
    (recorded in :data:`RANK_CAPPED`) instead of dividing by a zero eigenvalue."""
    try:
        return fit_whitening(x, **kwargs)
    except ConfigError:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rank = fit_whitening(x, eps=1e-12).rank
        RANK_CAPPED.append(f"{where}: rank {rank} < {x.shape[1]}")
        return fit_whitening(x, n_components=rank, **kwargs)


def matrix(encoder: SentenceEncoder, sets: dict[str, list], ks: list[int], inductive: list[str] | None) -> dict:
    """``{(pooling, cell): {set: spearman}}`` for raw, whitening full / k fitted on the set (task), and k fitted on
    ``inductive`` sentences."""
    texts = list(dict.fromkeys([t for pairs in sets.values() for p in pairs for t in (p.text_a, p.text_b)]
                               + (inductive or [])))
    index = {t: i for i, t in enumerate(texts)}
    vecs = encode_modes(encoder, texts)
    cells: dict = {}
    for mode, x in vecs.items():
        fit_ind = fit_full(x[[index[t] for t in dict.fromkeys(inductive)]], f"{mode} stsb-train",
                           fit_on="stsb-train") if inductive else None
        for name, pairs in sets.items():
            own = x[sorted({index[t] for p in pairs for t in (p.text_a, p.text_b)})]
            cells.setdefault((mode, "raw"), {})[name] = score(x, index, pairs)
            full = fit_full(own, f"{mode} {name}", fit_on="task", transductive=True)
            cells.setdefault((mode, "whitening (task)"), {})[name] = score(x, index, pairs, full)
            for k in ks:
                cells.setdefault((mode, f"whitening-{k} (task)"), {})[name] = score(x, index, pairs, full.truncate(k))
                if fit_ind is not None:
                    cells.setdefault((mode, f"whitening-{k} (stsb-train)"), {})[name] = \
                        score(x, index, pairs, fit_ind.truncate(k))
    return cells


def capped_note() -> str:
    """A line naming the whitening fits that were capped at their covariance's rank (empty if none), grouped by
    pooling."""
    if not RANK_CAPPED:
        return ""
    groups: dict[str, list[str]] = {}
    for entry in RANK_CAPPED:
        where, rank = entry.split(": ", 1)
        mode, fit = where.split(" ", 1)
        groups.setdefault(f"{mode} ({rank})", []).append(fit)
    return ("- rank-deficient covariances (the full whitening then keeps the non-degenerate components): "
            + "; ".join(f"{k}: {', '.join(v)}" for k, v in groups.items()) + "\n")


def table(cells: dict, names: tuple[str, ...], label: str) -> list[str]:
    rows = [f"| {label} | cell | " + " | ".join(names) + " | avg |", "|---" * (len(names) + 3) + "|"]
    for (mode, cell), vals in cells.items():
        nums = [vals[n] for n in names]
        rows.append(f"| {P_ID[mode]} {mode} | {cell} | " + " | ".join(f"{v:.2f}" for v in nums)
                    + f" | {statistics.mean(nums):.2f} |")
    return rows


def part_en(args, work: Path) -> str:
    t0 = time.time()
    encoder = SentenceEncoder.from_pretrained(args.model, max_length=args.max_length)
    inductive = [t for p in load_pairs("stsb_en", "train") for t in (p.text_a, p.text_b)]
    cells = matrix(encoder, en_sets(), args.ks, inductive)
    rows = table(cells, EN_SETS, args.model)
    pub = ["", "Published (other models: bert-base-uncased, SBERT-base-NLI; STS-B column = STS-B test):", "",
           "| model | " + " | ".join(EN_SETS) + " |", "|---" * (len(EN_SETS) + 1) + "|"]
    pub += [f"| {k} | " + " | ".join(f"{v:.2f}" for v in vals) + " |" for k, vals in PUBLISHED_EN.items()]
    pub += ["", capped_note()]
    head = (f"## Unsupervised sentence vectors, English: {args.model} x pooling x whitening\n\n{provenance()}"
            f"- encode-only, max length {args.max_length}, {time.time() - t0:.0f} s. Spearman x100 of the cosines; "
            "STS12-16 in SentEval's \"all\" setting (the year's sub-sets concatenated; 3108/1500/3750/3000/1186 "
            "scored pairs), STSB = stsb_en test (1379).\n- whitening fitting data: `(task)` = the evaluated set's own "
            "sentences, both sides, no labels (transductive, the articles' protocol); `(stsb-train)` = the 5,749 "
            "STS-B training pairs' sentences (inductive, one fit for every set). k = 128 is the spec's size for "
            "small models (MiniLM: H = 384); P2 is the checkpoint's pooler Dense without tanh.\n\n")
    return head + "\n".join(rows + pub) + "\n"


def part_simcse(args, work: Path) -> str:
    from kexue.tasks.simcse import SimCSEConfig, train_simcse
    from kexue.train import TrainerConfig

    sets = {k: v for k, v in en_sets().items() if k in args.simcse_sets}
    names = tuple(k for k in EN_SETS if k in sets)
    per_seed, seconds = [], []
    for seed in args.seeds:
        cfg = SimCSEConfig(model=args.model, data="wiki1m_en_prefix", eval_data="stsb_en", pooling="cls",
                           max_length=args.max_length, train_limit=args.simcse_sentences, eval_limit=500,
                           eval_before=False)
        tcfg = TrainerConfig(output_dir=work / f"simcse-{seed}", max_steps=args.simcse_steps, batch_size=64,
                             learning_rate=args.simcse_lr, seed=seed, progress_bar=False, save_every=10 ** 6,
                             metric_for_best="spearman", eval_every=max(args.simcse_steps // 2, 1))
        res = train_simcse(cfg, tcfg, log=print)
        seconds.append(res["train_seconds"])
        encoder = SentenceEncoder.from_pretrained(res["best_dir"], max_length=args.max_length)
        per_seed.append(matrix(encoder, sets, [], None))
        print(f"seed {seed}: STSB cls {per_seed[-1][('cls', 'raw')]['STSB']:.2f}", flush=True)
    rows = [f"| SimCSE({args.model}) | " + " | ".join(names) + " | avg |", "|---" * (len(names) + 2) + "|"]
    for mode in modes_of(SentenceEncoder.from_pretrained(args.model)):
        vals = [[cells[(mode, "raw")][n] for n in names] for cells in per_seed]
        cols = [[v[i] for v in vals] for i in range(len(names))] + [[statistics.mean(v) for v in vals]]
        rows.append(f"| {P_ID[mode]} {mode} | " + " | ".join(
            f"{statistics.mean(c):.2f} ± {statistics.stdev(c):.2f}" if len(c) > 1 else f"{c[0]:.2f}" for c in cols)
            + " |")
    head = (f"## Unsupervised SimCSE on {args.model}, English\n\n{provenance(','.join(map(str, args.seeds)))}"
            f"- budget (reduced; the paper trains 1 epoch of 1M sentences at batch 64): {args.simcse_steps} updates "
            f"of 64 sentences out of {args.simcse_sentences} distinct wiki1m-prefix sentences (a shuffle by the seed), "
            f"lr {args.simcse_lr}, cls pooling while training, cross-view negatives, scale 20, the model's dropout "
            f"(0.1); best of the evaluations every {max(args.simcse_steps // 2, 1)} updates on 500 stsb_en dev pairs; "
            f"{statistics.mean(seconds):.0f} s training per "
            f"seed. Every pooling of the trained encoder is evaluated (raw cosines) on {', '.join(names)} (reduced to "
            "fit the budget); mean ± std over the seeds. The raw rows of the `en` section are the same model before "
            "SimCSE.\n\n")
    return head + "\n".join(rows) + "\n"


def part_zh(args, work: Path) -> str:
    sets = {name: load_pairs(name, split)[:args.zh_limit] for name, split in ZH_TASKS}
    names = tuple(n for n, _ in ZH_TASKS)
    texts = [t for pairs in sets.values() for p in pairs for t in (p.text_a, p.text_b)]
    rows = []
    for label in args.zh_models:
        if label == SCRATCH:
            torch.manual_seed(0)
            backbone, tokenizer = build_backbone(SCRATCH, texts, ScratchModel(), args.max_length)
            encoder = SentenceEncoder(backbone, tokenizer, max_length=args.max_length).eval()
            shown = "random init (char vocab, 4L-256H)"
        else:
            encoder, shown = SentenceEncoder.from_pretrained(label, max_length=args.max_length), label
        rows += ["", f"**{shown}**", ""] + table(matrix(encoder, sets, args.zh_ks, None), names, shown)
    pub = ["", "Published (spec §3; BERT-base / SimBERT-base, raw / whitening / whitening-256 / SimCSE):", "",
           "| model-pool | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    pub += [f"| {k} | " + " | ".join(v) + " |" for k, v in PUBLISHED_ZH.items()]
    pub += ["", capped_note()]
    head = (f"## Unsupervised sentence vectors, Chinese five tasks\n\n{provenance(0)}"
            f"- splits: atec test, bq dev (its test is unlabelled), lcqmc test, pawsx_zh test, stsb_zh test; the first "
            f"{args.zh_limit} pairs of each (reduced). Encode-only, max length {args.max_length}; whitening fitted on "
            "the evaluated set's own sentences (transductive, the articles' protocol). No Chinese pretrained model "
            "exists here yet: all-MiniLM-L6-v2 is an English model whose vocabulary holds the CJK characters, and "
            "the random-init row (torch seed 0; its character vocabulary built from the evaluated sentences, no labels) "
            "is the floor. SimCSE for Chinese is not run (budget).\n")
    return head + "\n".join(rows + pub) + "\n"


def part_match(args, work: Path) -> str:
    from kexue.tasks.match import MatchConfig, train_match
    from kexue.tasks.match_eval import evaluate_match_file
    from kexue.train import TrainerConfig

    tasks = ("afqmc", "stsb_zh", "simclue_sample")
    sohu = data_root() / "sohu2021_subset" / "text2vec"
    plan = [("conditional LN", tasks, True), ("plain (no condition)", tasks, False)] + \
        [(f"separate: {t}", (t,), False) for t in tasks]
    rows = ["| model | " + " | ".join(f"{t} acc / F1" for t in tasks) + " | mean F1 | sohu dd A/B F1 | "
            "sohu dc A/B F1 | wall s (train + evals) |", "|---" * (len(tasks) + 5) + "|"]
    separate: dict[str, dict] = {}
    for name, run_tasks, cond in plan:
        cfg = MatchConfig(model=args.match_model, tasks=run_tasks, conditional_ln=cond, max_length=args.max_length,
                          valid_size=args.match_valid, train_limit=args.match_train, eval_limit=args.match_eval)
        tcfg = TrainerConfig(output_dir=work / name.replace(" ", "_").replace(":", ""), epochs=args.match_epochs,
                             batch_size=16, learning_rate=args.match_lr, seed=args.seeds[0], progress_bar=False,
                             save_every=10 ** 6, warmup_ratio=0.1)
        t0 = time.time()
        res = train_match(cfg, tcfg, log=print)
        wall = time.time() - t0
        test = res["after"]["test"]
        task = "simclue_sample" if "simclue_sample" in run_tasks else run_tasks[0]
        sohu_cells = []
        for f in ("dd-test.jsonl", "dc-test.jsonl"):
            rep = evaluate_match_file(res["best_dir"], sohu / f, task)["criteria"]
            sohu_cells.append(f"{rep['A']['f1']:.1f} / {rep['B']['f1']:.1f}")
        cells = {t: f"{test[f'{t}_accuracy']:.2f} / {test[f'{t}_f1']:.2f}" for t in run_tasks}
        if len(run_tasks) == 1:
            separate[run_tasks[0]] = {"cell": cells[run_tasks[0]], "f1": test["f1"]}
        rows.append(f"| {name} | " + " | ".join(cells.get(t, "–") for t in tasks) + f" | {test['f1']:.2f} | "
                    + " | ".join(sohu_cells) + f" | {wall:.0f} |")
        print(rows[-1], flush=True)
    if len(separate) == len(tasks):
        rows.append("| separate models (together) | " + " | ".join(separate[t]["cell"] for t in tasks)
                    + f" | {statistics.mean(separate[t]['f1'] for t in tasks):.2f} | see rows | see rows | – |")
    head = (f"## Multi-task matching with conditional LayerNorm (Sohu 2021 baseline recipe)\n\n"
            f"{provenance(args.seeds[0])}- `kexue train match` with --model {args.match_model}, the first "
            f"{args.match_train} training pairs of each task (after the overlap guard), {args.match_epochs} epoch(s), "
            f"batch 16, lr {args.match_lr}, warm-up 10 %, max length {args.max_length}; valid = {args.match_valid} "
            f"pairs cut from train (afqmc, simclue) or the first {args.match_eval} of STS-B valid; test = the first "
            f"{args.match_eval} pairs of afqmc dev.txt, "
            "STS-B test (score >= 3 is a match), SimCLUE test_public; accuracy / positive-class F1 x100 of the "
            "best-valid-F1 checkpoint. Sohu: the text2vec dd/dc test fragments (500 pairs each, A = grade >= 3, B = "
            "grade 5), scored with the simclue_sample task id (the broadest task) where the model has it; the "
            "model never saw Sohu data, so these are transfer numbers. The article's setting (RoFormer-base, 6 Sohu "
            "sub-tasks, EMA, 5 epochs) is not reproduced: its training files are not public.\n\n")
    return head + "\n".join(rows) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=("en", "simcse", "zh", "match"), required=True)
    p.add_argument("--model", default="minilm")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--ks", type=lambda s: [int(x) for x in s.split(",")], default=[128, 256])
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 3])
    p.add_argument("--simcse-steps", type=int, default=60)
    p.add_argument("--simcse-sentences", type=int, default=10000)
    p.add_argument("--simcse-lr", type=float, default=3e-5)
    p.add_argument("--simcse-sets", type=lambda s: s.split(","), default=list(EN_SETS),
                   help="Comma-separated sets the SimCSE models are evaluated on (STS12..STS16, STSB).")
    p.add_argument("--zh-limit", type=int, default=2000)
    p.add_argument("--zh-ks", type=lambda s: [int(x) for x in s.split(",")], default=[128])
    p.add_argument("--zh-models", nargs="+", default=["minilm", SCRATCH])
    p.add_argument("--match-model", default="minilm")
    p.add_argument("--match-train", type=int, default=2000)
    p.add_argument("--match-valid", type=int, default=500)
    p.add_argument("--match-eval", type=int, default=1000)
    p.add_argument("--match-epochs", type=int, default=1)
    p.add_argument("--match-lr", type=float, default=5e-5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="kexue-bench-matrix-") as tmp:
        text = {"en": part_en, "simcse": part_simcse, "zh": part_zh, "match": part_match}[args.part](args, Path(tmp))
    print(text)
    print("wrote", write_section(f"sts-matrix-{args.part}", text))


if __name__ == "__main__":
    main()
