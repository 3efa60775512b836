"""Package a `kexue pretrain` run as kexue's shipped Chinese base model ``kexue-zh-mini``.

Writes ``src/kexue/weights/kexue_zh_mini/``: the run's ``best/`` model as fp16 safetensors (Hugging Face layout), its
tokenizer, a small loss-curve PNG and the model card README.md (corpus files, steps, tokens seen, time, held-out MLM
accuracy, NSP accuracy, and the [UNK] rate of the tokenizer on every Chinese dev/test file kexue evaluates on).

    python scripts/release_zh_mini.py RUN_FOLDER [--corpus-manifest CORPUS.manifest.json] [--command "..."]

Refuses (exit 1) when the [UNK] rate of any evaluation file is 0.5% or more, or the fp16 weights exceed 25 MB.
Commit the folder only when the new model is better than the committed one (held-out MLM loss in the card).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "src" / "kexue" / "weights" / "kexue_zh_mini"
MAX_BYTES = 25 * 1024 * 1024
MAX_UNK = 0.005


def unk_rates(tokenizer, data_root: Path) -> dict[str, tuple[int, float]]:
    """``{eval file: (tokens, [UNK] fraction)}`` over the Chinese text of every file in ``EVAL_FILES``."""
    from kexue.data.corpus import EVAL_FILES, eval_texts

    out = {}
    for rel, kind in sorted(EVAL_FILES.items()):
        texts = list(eval_texts(data_root / rel, kind))
        if not texts:
            continue
        ids = tokenizer.backend(texts, add_special_tokens=False)["input_ids"]
        total = sum(len(x) for x in ids)
        unk = sum(x.count(tokenizer.unk_token_id) for x in ids)
        out[rel] = (total, unk / max(total, 1))
    return out


def curve(run: Path, png: Path) -> list[dict]:
    """The held-out evaluations of the run, and a small PNG of train / held-out MLM loss against tokens."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in records if r.get("event") == "train"]
    evals = [r for r in records if r.get("event") == "eval"]
    fig, ax = plt.subplots(figsize=(5, 3), dpi=80)
    ax.plot([r["step"] for r in train], [r["mlm_loss"] for r in train], label="train MLM loss", lw=1)
    ax.plot([r["step"] for r in evals], [r["mlm_loss"] for r in evals], "o-", label="held-out MLM loss")
    ax.set_xlabel("optimizer update")
    ax.set_ylabel("cross-entropy (nats)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return evals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--corpus-manifest", type=Path, default=None)
    parser.add_argument("--command", default="")
    parser.add_argument("--data-root", type=Path, default=Path(os.environ.get("KEXUE_DATA", REPO.parent / "shared"
                                                                                                   / "data")))
    args = parser.parse_args()

    from kexue.data.tokenization import Tokenizer
    from kexue.models import Transformer

    best = args.run / "best"
    model = Transformer.from_pretrained(best)
    tokenizer = Tokenizer.from_pretrained(best)
    rates = unk_rates(tokenizer, args.data_root)
    worst = max(rates.items(), key=lambda kv: kv[1][1])
    if worst[1][1] >= MAX_UNK:
        print(f"error: [UNK] rate {worst[1][1]:.3%} on {worst[0]} (limit {MAX_UNK:.1%})", file=sys.stderr)
        return 1
    if TARGET.exists():
        shutil.rmtree(TARGET)
    TARGET.mkdir(parents=True)
    model.to(torch.float16).save_pretrained(TARGET)
    tokenizer.save_pretrained(TARGET)
    size = (TARGET / "model.safetensors").stat().st_size
    if size > MAX_BYTES:
        print(f"error: {size / 2**20:.1f} MB of weights (limit 25 MB)", file=sys.stderr)
        return 1
    evals = curve(args.run, TARGET / "loss_curve.png")
    results = json.loads((args.run / "results.json").read_text())
    export = json.loads((best / "trainer_export.json").read_text())
    run_cfg = json.loads((args.run / "config.json").read_text())
    manifest = json.loads(args.corpus_manifest.read_text()) if args.corpus_manifest else None
    (TARGET / "README.md").write_text(card(model, tokenizer, results, export, run_cfg, evals, rates, manifest,
                                           args.command, size), encoding="utf-8")
    write_results(results, export, evals, rates, args.command, size)
    print(f"wrote {TARGET} ({size / 2**20:.1f} MB weights); worst [UNK] rate {worst[1][1]:.3%} ({worst[0]})")
    return 0


def write_results(results, export, evals, rates, command, size) -> None:
    """The ``pretrain-zh-mini`` section of docs/RESULTS.md."""
    sys.path.insert(0, str(REPO / "bench"))
    from _results import machine, write_section

    best = export["metrics"]
    rows = [f"| {r['step']} | {r['mlm_loss']:.3f} | {r['mlm_accuracy']:.3f} | {r.get('nsp_accuracy', float('nan')):.3f} |"
            for r in evals]
    worst = max(rates.items(), key=lambda kv: kv[1][1])
    write_section("pretrain-zh-mini", "\n".join([
        "## kexue-zh-mini: pretraining run (issue 10)", "",
        f"- command: `{command}`", f"- machine: {machine()}; one thread (the other core ran other work)",
        f"- {results['optimizer_steps']} updates, {results['tokens_seen']:,} real tokens, "
        f"{results['train_seconds'] / 60:.0f} min; {size / 2**20:.1f} MB fp16; seed 42",
        f"- shipped: update {export['step']}, held-out MLM loss {best['mlm_loss']:.3f}, MLM accuracy "
        f"{best['mlm_accuracy']:.3f}, NSP accuracy {best.get('nsp_accuracy', float('nan')):.3f} (held-out: every "
        f"100th corpus document, {results['heldout_examples']} examples, fixed masks)",
        f"- worst [UNK] rate over the {len(rates)} Chinese dev/test files: {worst[1][1]:.3%} ({worst[0]})", "",
        "| update | held-out MLM loss | MLM accuracy | NSP accuracy |", "|---|---|---|---|", *rows, "",
        "Model card, corpus files and the loss curve: `src/kexue/weights/kexue_zh_mini/README.md`.", ""]))


def card(model, tokenizer, results, export, run_cfg, evals, rates, manifest, command, size) -> str:
    c = model.config
    t = run_cfg["trainer"]
    p = run_cfg["pretrain"]
    best = export["metrics"]
    lines = [
        "# kexue-zh-mini", "",
        "kexue's own small Chinese base model: a RoFormerV2 (no biases, scale-free RMS norm, RoPE; "
        "https://kexue.fm/archives/8998) pretrained by `kexue pretrain` on 2 CPU cores, with a tied masked-LM head "
        "and a next-sentence head (index 0 = IsNext). It exists so that kexue's Chinese recipes and benchmarks have "
        "something better than a random initialisation on a machine without downloads; it is far weaker than "
        "bert-base-chinese or RoFormerV2-base, and numbers obtained with it are labelled as such.", "",
        "Load it with `--model kexue-zh-mini` (every kexue command) or `Transformer.from_pretrained(\"kexue-zh-mini\")`;"
        " transformers loads the folder as `RoFormerForMaskedLM`-style weights only through kexue (RoFormerV2 has no "
        "transformers class).", "",
        "## Architecture", "",
        f"- family {c.family}, {c.num_hidden_layers} layers, hidden {c.hidden_size}, {c.num_attention_heads} heads, "
        f"FFN {c.intermediate_size} ({c.hidden_act}), vocabulary {c.vocab_size} characters "
        f"(`tokenizers` WordPiece trainer, one token per CJK character, lower-cased), "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, {size / 2**20:.1f} MB as fp16 "
        "safetensors.",
        "- heads: MLM (logits = h · E^T, tied, no bias), pooler + NSP.", "",
        "## Training", "",
        f"- command: `{command}`" if command else "- command: see config below",
        f"- objective: whole-word masking over jieba words ({p['masking']['word_probability']:.0%} of words; 80% "
        "[MASK] / 10% random / 10% kept, one draw per word), redrawn every epoch; next-sentence pairs (50% IsNext, "
        "50% a span of another document) cut at sentence starts of packed examples.",
        f"- {results['optimizer_steps']} AdamW updates, peak lr {t['learning_rate']:g}, linear warm-up "
        f"{t['warmup_ratio']:.0%} then linear decay, weight decay {t['weight_decay']:g}, residual warm-up α 0→1 over "
        f"{p['alpha_warmup_steps']} updates, batches of ≤ {p['max_tokens']} padded tokens (≤ {t['batch_size']} "
        f"examples) of ≤ {p['max_length']} tokens, {t['precision']} autocast, seed {t['seed']}.",
        f"- tokens seen (real, not padding): {results['tokens_seen']:,}; training time {results['train_seconds'] / 60:.0f}"
        " min on 2 CPU cores (AMD EPYC, one thread at a time for this run), torch 2.13.0+cpu.",
        f"- held-out set: every 100th document of the corpus (never trained on), {results['heldout_examples']} "
        "examples, masks fixed across evaluations; MLM accuracy counts every chosen position (80% [MASK], 10% "
        "random, 10% kept, so a tenth are visible).", "",
        "## Held-out results", "",
        "| update | MLM loss | MLM accuracy | NSP accuracy |", "|---|---|---|---|",
    ]
    before = results.get("before")
    if before:
        lines.append(f"| 0 | {before['mlm_loss']:.3f} | {before['mlm_accuracy']:.3f} | "
                     f"{before.get('nsp_accuracy', float('nan')):.3f} |")
    for r in evals:
        lines.append(f"| {r['step']} | {r['mlm_loss']:.3f} | {r['mlm_accuracy']:.3f} | "
                     f"{r.get('nsp_accuracy', float('nan')):.3f} |")
    lines += ["", f"Shipped weights: update {export['step']} (lowest held-out MLM loss {best['mlm_loss']:.3f}, "
              f"accuracy {best['mlm_accuracy']:.3f}, NSP accuracy {best.get('nsp_accuracy', float('nan')):.3f}).", "",
              "![loss curve](loss_curve.png)", "",
              "## Corpus", "",
              "Built by `kexue pretrain-corpus` (kexue.data.corpus): raw text, unlabeled files and *training* splits "
              "only; every sentence that occurs in any dev/test file kexue evaluates on is removed; deduplicated. "
              "Research-only datasets (DuIE, LCSTS) are left out, so these weights carry none of their text."]
    if manifest:
        lines += ["", f"{manifest['sentences']:,} sentences, {manifest['characters']:,} characters; files used:", ""]
        lines += [f"- `{f}`" for f in manifest["files_used"]]
        excluded = manifest.get("excluded") or {}
        if excluded:
            lines += ["", "Not used:", ""] + [f"- `{k}`: {v}" for k, v in excluded.items()]
    lines += ["", "## [UNK] rate on the evaluation sets", "",
              "Share of [UNK] among the tokens of the Chinese text of every dev/test file (all < 0.5%):", "",
              "| file | tokens | [UNK] |", "|---|---|---|"]
    lines += [f"| `{k}` | {n:,} | {r:.3%} |" for k, (n, r) in rates.items()]
    lines += ["", "## Licence", "",
              "The code is Apache-2.0. The weights derive from text whose licences are mixed (Wikipedia CC BY-SA, "
              "TED CC BY-NC-ND, datasets of unknown licence; see each dataset's SOURCE.md): treat the model as for "
              "research and evaluation use.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
