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
  stsb_zh test; first ``--zh-limit`` pairs each) with ``--zh-models``: all-MiniLM-L6-v2 (an English model; its
  vocabulary holds the CJK characters), ``kexue-zh-mini`` (kexue's own small Chinese RoFormerV2) and ``scratch`` (a
  randomly initialised character BERT, the floor); whitening fitted on the task (transductive).
* ``--part simcse-zh``: per Chinese task, SimCSE from ``--model`` (``kexue-zh-mini``) for one epoch on the first
  ``--simcse-zh-sentences`` sentences of a split that is not the evaluated one (:data:`ZH_SIMCSE_SPLIT`, minus the
  evaluated sentences), dropout 0.3 as https://kexue.fm/archives/8348; evaluated like ``zh``.
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
from _sts_match import part_match  # noqa: E402
from _sts_published import PUBLISHED_EN, PUBLISHED_ZH  # noqa: E402

from kexue.data.readers.semeval_sts import YEARS, read_semeval_all  # noqa: E402
from kexue.data.registry import load_pairs  # noqa: E402
from kexue.embeddings import SentenceEncoder  # noqa: E402
from kexue.embeddings.whitening import fit_whitening  # noqa: E402
from kexue.errors import ConfigError  # noqa: E402
from kexue.metrics.sts import spearman  # noqa: E402
from kexue.nn.pooling import pool  # noqa: E402
from kexue.tasks.common import SCRATCH, ScratchModel, build_backbone  # noqa: E402

POOLINGS = ("cls", "pooler", "last-avg", "first-last-avg")
P_ID = {"cls": "P1", "pooler": "P2", "last-avg": "P3", "first-last-avg": "P4"}
EN_SETS = (*YEARS, "STSB")
ZH_SPLITS = ("atec test, bq dev (its test is unlabelled), lcqmc test, pawsx_zh test, stsb_zh test")
ZH_MODEL_NOTES = {
    "minilm": "minilm = all-MiniLM-L6-v2 (an English supervised sentence model, 6L-384H; its vocabulary holds the "
              "CJK characters)",
    SCRATCH: "random init = a randomly initialised 4L-256H character BERT (torch seed 0; its character vocabulary "
             "built from the evaluated sentences, no labels), the floor",
    "kexue-zh-mini": "kexue-zh-mini = kexue's own Chinese RoFormerV2 (4L-256H, 5.2M parameters, MLM + NSP on 7M "
                     "tokens, 36 min on 2 CPU cores; a weak model, see its model card)",
}
ZH_TASKS = (("atec", "test"), ("bq", "dev"), ("lcqmc", "test"), ("pawsx_zh", "test"), ("stsb_zh", "test"))


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


def simcse_encoder(args, data: str, out: Path, seed: int, **cfg) -> tuple[SentenceEncoder, dict]:
    """Train unsupervised SimCSE (``kexue.tasks.simcse``: cls pooling, cross-view negatives, scale 20, batch 64)
    from ``args.model`` on ``data``; returns the encoder of its ``best/`` export and the run's results. ``cfg`` goes
    to :class:`SimCSEConfig` except ``steps`` / ``lr`` / ``eval_every`` (``steps=None``: one epoch)."""
    from kexue.tasks.simcse import SimCSEConfig, train_simcse
    from kexue.train import TrainerConfig

    steps, lr, every = cfg.pop("steps"), cfg.pop("lr"), cfg.pop("eval_every")
    length = cfg.pop("max_length", args.max_length)
    scfg = SimCSEConfig(model=args.model, data=data, pooling="cls", max_length=length, eval_before=False, **cfg)
    tcfg = TrainerConfig(output_dir=out, max_steps=steps, epochs=1, batch_size=64, learning_rate=lr, seed=seed,
                         progress_bar=False, save_every=10 ** 6, metric_for_best="spearman", eval_every=every)
    res = train_simcse(scfg, tcfg, log=print)
    return SentenceEncoder.from_pretrained(res["best_dir"], max_length=args.max_length), res


def mean_std_rows(per_seed: list[dict], keys: list[tuple[str, str]], names: tuple[str, ...], label: str,
                  with_cell: bool) -> list[str]:
    """Markdown rows ``mean ± std`` over seeds (one number for one seed) of ``per_seed[i][(mode, cell)][name]``,
    plus the average over ``names``."""
    extra = " cell |" if with_cell else ""
    rows = [f"| {label} |{extra} " + " | ".join(names) + " | avg |", "|---" * (len(names) + 2 + with_cell) + "|"]
    for mode, cell in keys:
        vals = [[cells[(mode, cell)][n] for n in names] for cells in per_seed]
        cols = [[v[i] for v in vals] for i in range(len(names))] + [[statistics.mean(v) for v in vals]]
        rows.append(f"| {P_ID[mode]} {mode} |" + (f" {cell} |" if with_cell else "") + " " + " | ".join(
            f"{statistics.mean(c):.2f} ± {statistics.stdev(c):.2f}" if len(c) > 1 else f"{c[0]:.2f}" for c in cols)
            + " |")
    return rows


def part_simcse(args, work: Path) -> str:
    sets = {k: v for k, v in en_sets().items() if k in args.simcse_sets}
    names = tuple(k for k in EN_SETS if k in sets)
    per_seed, seconds, steps = [], [], []
    every = max(args.simcse_steps // 2, 1)
    for seed in args.seeds:
        encoder, res = simcse_encoder(args, "wiki1m_en_prefix", work / f"simcse-{seed}", seed,
                                      steps=args.simcse_steps, lr=args.simcse_lr, eval_every=every,
                                      eval_data="stsb_en", train_limit=args.simcse_sentences, eval_limit=500,
                                      max_length=args.simcse_max_length or args.max_length)
        seconds.append(res["train_seconds"])
        steps.append(res["optimizer_steps"])
        per_seed.append(matrix(encoder, sets, [], None))
        print(f"seed {seed}: STSB cls {per_seed[-1][('cls', 'raw')]['STSB']:.2f}", flush=True)
    modes = modes_of(SentenceEncoder.from_pretrained(args.model))
    rows = mean_std_rows(per_seed, [(m, "raw") for m in modes], names, f"SimCSE({args.model})", with_cell=False)
    sentences = min(args.simcse_sentences, res["sentences"])
    head = (f"## Unsupervised SimCSE on {args.model}, English\n\n{provenance(','.join(map(str, args.seeds)))}"
            f"- budget (reduced; the paper trains 1 epoch of 1M sentences at batch 64, 15,625 updates): "
            f"{args.simcse_steps} updates of 64 sentences ({args.simcse_steps * 64 / sentences:.2f} passes) over "
            f"{sentences} distinct wiki1m-prefix sentences (the first 11,914 lines of wiki1m are all kexue has; a "
            f"shuffle by the seed), AdamW lr {args.simcse_lr} decayed linearly to 0, max length "
            f"{args.simcse_max_length or args.max_length} while "
            f"training (the paper: 32; evaluation: {args.max_length}), cls pooling while training, cross-view "
            "negatives, scale 20, "
            f"the model's dropout (0.1); best of the evaluations every {every} updates on 500 stsb_en dev pairs; "
            f"{statistics.mean(seconds):.0f} s training per seed (one CPU thread). Every pooling of the trained "
            f"encoder is evaluated (raw cosines) on {', '.join(names)}; mean ± std over the seeds. The raw rows of "
            "the `en` section are the same model before SimCSE.\n\n")
    return head + "\n".join(rows) + "\n"


# spec §3 / https://kexue.fm/archives/8348 trains on 10k sentences pooled from all of a task's splits (transductive);
# here each task trains on one split that is not the evaluated one (labels unread), minus the evaluated sentences.
ZH_SIMCSE_SPLIT = {"atec": "dev", "bq": "test", "lcqmc": "dev", "pawsx_zh": "dev", "stsb_zh": "train"}


def simcse_zh_sentences(train_texts: list[str], evaluated_pairs) -> tuple[list[str], int]:
    """The SimCSE training sentences of a Chinese task: ``train_texts`` (both sides of a split other than the
    evaluated one) stripped, deduplicated in order, without any sentence of ``evaluated_pairs`` (either side);
    returns ``(sentences, how many distinct sentences were removed as evaluated)``."""
    held_out = {t.strip() for p in evaluated_pairs for t in (p.text_a, p.text_b)}
    distinct = [t for t in dict.fromkeys(t.strip() for t in train_texts) if t and "\n" not in t]
    kept = [t for t in distinct if t not in held_out]
    return kept, len(distinct) - len(kept)


def part_simcse_zh(args, work: Path) -> str:
    from kexue.tasks.whitening import load_sentences

    split_of = dict(ZH_TASKS)
    unknown = sorted(set(args.simcse_zh_tasks) - set(split_of))
    if unknown:
        raise ConfigError(f"--simcse-zh-tasks: unknown {', '.join(unknown)}; expected some of {', '.join(split_of)}")
    tasks = tuple(t for t, _ in ZH_TASKS if t in args.simcse_zh_tasks)
    per_seed: list[dict] = [{} for _ in args.seeds]
    notes, seconds = [], []
    for task in tasks:
        if ZH_SIMCSE_SPLIT[task] == split_of[task]:
            raise ConfigError(f"--simcse-zh-tasks {task}: would train on its evaluated split")
        kept, removed = simcse_zh_sentences(load_sentences(task, ZH_SIMCSE_SPLIT[task]),
                                            load_pairs(task, split_of[task]))
        path = work / f"{task}-{ZH_SIMCSE_SPLIT[task]}.txt"
        path.write_text("\n".join(kept) + "\n", encoding="utf-8")
        evaluated = {task: load_pairs(task, split_of[task])[:args.zh_limit]}
        for i, seed in enumerate(args.seeds):
            t0 = time.time()
            encoder, res = simcse_encoder(args, str(path), work / f"{task}-{seed}", seed, steps=None,
                                          lr=args.simcse_zh_lr, eval_every=None, eval_data="stsb_zh",
                                          eval_limit=200, dropout=args.simcse_zh_dropout,
                                          train_limit=args.simcse_zh_sentences)
            for key, vals in matrix(encoder, evaluated, args.zh_ks, None).items():
                per_seed[i].setdefault(key, {}).update(vals)
            seconds.append(time.time() - t0)
            print(f"{task} seed {seed}: {res['sentences']} sentences, {res['optimizer_steps']} updates, "
                  f"{res['train_seconds']:.0f} s training, {seconds[-1]:.0f} s in all; P1 raw "
                  f"{per_seed[i][('cls', 'raw')][task]:.2f}", flush=True)
        notes.append(f"{task}: {ZH_SIMCSE_SPLIT[task]} split, {res['sentences']} sentences "
                     f"({len(kept)} distinct after removing {removed} that occur in the evaluated {split_of[task]} "
                     f"split), {res['optimizer_steps']} updates")
    keys = list(per_seed[0])
    rows = mean_std_rows(per_seed, keys, tasks, f"SimCSE({args.model})", with_cell=True)
    head = (f"## Unsupervised SimCSE on {args.model}, Chinese five tasks\n\n"
            f"{provenance(','.join(map(str, args.seeds)))}"
            f"- one SimCSE model per task (each column is a different model), trained from {args.model} for one "
            f"epoch at batch 64 on the first {args.simcse_zh_sentences} distinct sentences (a shuffle by the seed) of "
            "a split that is **not** the evaluated one, labels unread, with every sentence of the evaluated split "
            "removed (inductive): " + "; ".join(notes) + ". atec, lcqmc and pawsx_zh have no training split here, "
            "so their dev sentences are used; bq's evaluated split is dev, so its unlabelled test sentences are. "
            f"AdamW lr {args.simcse_zh_lr} decayed linearly to 0 (no warm-up), dropout {args.simcse_zh_dropout}, "
            "cls pooling while training, cross-view "
            f"negatives, scale 20, max length {args.max_length}; the model after the epoch (no checkpoint "
            f"selection; one end-of-training log on 200 stsb_zh dev pairs). {statistics.mean(seconds):.0f} s per "
            "task and seed (training + evaluation, one CPU thread).\n"
            "- the article (https://kexue.fm/archives/8348, spec §3): bert-base-chinese etc., 10,000 sentences pooled "
            "from all of the task's splits including the evaluated one (transductive), 1 epoch, batch 64, lr 1e-5, "
            "dropout 0.3 — the same number of updates (~157; pawsx_zh fewer here: its dev split is small), a far "
            "larger model.\n"
            f"- evaluated like section `sts-matrix-zh` (same pairs: {ZH_SPLITS}, first {args.zh_limit} each): every "
            "pooling of the trained encoder, raw cosines and whitening fitted on the evaluated set's own sentences "
            "(transductive); mean ± std over the seeds. The `kexue-zh-mini` rows of `sts-matrix-zh` are the same "
            "model before SimCSE; the published SimCSE numbers are the fourth value of each cell there.\n\n")
    return head + "\n".join(rows) + "\n" + capped_note()


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
            f"- splits: {ZH_SPLITS}; the first {args.zh_limit} pairs of each (reduced). Encode-only, max length "
            f"{args.max_length}; whitening fitted on the evaluated set's own sentences (transductive, the articles' "
            "protocol).\n- models in the rows: " + "; ".join(ZH_MODEL_NOTES.get(m, m) for m in args.zh_models)
            + ". The published rows are bert-base-chinese and SimBERT-base, far larger models. Chinese SimCSE: "
            "section `sts-matrix-simcse-zh`.\n")
    return head + "\n".join(rows + pub) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=("en", "simcse", "zh", "simcse-zh", "match"), required=True)
    p.add_argument("--model", default="minilm")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--ks", type=lambda s: [int(x) for x in s.split(",")], default=[128, 256])
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 3])
    p.add_argument("--simcse-steps", type=int, default=60)
    p.add_argument("--simcse-sentences", type=int, default=10000)
    p.add_argument("--simcse-lr", type=float, default=3e-5)
    p.add_argument("--simcse-max-length", type=int, default=None,
                   help="Max tokens per sentence while training --part simcse (default --max-length; the paper: 32).")
    p.add_argument("--simcse-sets", type=lambda s: s.split(","), default=list(EN_SETS),
                   help="Comma-separated sets the SimCSE models are evaluated on (STS12..STS16, STSB).")
    p.add_argument("--zh-limit", type=int, default=2000)
    p.add_argument("--zh-ks", type=lambda s: [int(x) for x in s.split(",")], default=[128])
    p.add_argument("--zh-models", nargs="+", default=["minilm", SCRATCH, "kexue-zh-mini"])
    p.add_argument("--simcse-zh-tasks", type=lambda s: s.split(","), default=[t for t, _ in ZH_TASKS],
                   help="Comma-separated Chinese tasks of --part simcse-zh (default: all five).")
    p.add_argument("--simcse-zh-sentences", type=int, default=10000)
    p.add_argument("--simcse-zh-lr", type=float, default=1e-5)
    p.add_argument("--simcse-zh-dropout", type=float, default=0.3)
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
        text = {"en": part_en, "simcse": part_simcse, "zh": part_zh, "simcse-zh": part_simcse_zh,
                "match": part_match}[args.part](args, Path(tmp))
    print(text)
    print("wrote", write_section(f"sts-matrix-{args.part}", text))


if __name__ == "__main__":
    main()
