"""Encoder speed: kexue's Transformer vs transformers' BertModel on the same all-MiniLM-L6-v2 weights.

Rows: forward tokens/s and training-step tokens/s (forward + backward + AdamW step) at batch 32 x length 128,
and on length-bucketed real STS-B sentences (sorted by length, batches of 32 padded to the batch maximum;
tokens = real tokens). Timings alternate the two implementations in one process on 2 CPU threads and
report the median of several repeats; peak memory is the RSS growth of a fresh subprocess running one
forward / one training step (RSS sampled every 2 ms, minus the RSS after loading).

Usage: python bench/encoder_speed.py [--repeats 5] [--train-repeats 3] [--sentences 128] [--data $KEXUE_DATA]
Writes the "encoder_speed" section of docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import provenance, write_section  # noqa: E402

BATCH, LENGTH = 32, 128


def load_models(only: str | None = None):
    """``{"kexue": Transformer, "transformers": BertModel}`` with the minilm weights (or just ``only``)."""
    from transformers import BertModel

    from kexue.models import Transformer, resolve_model_path

    folder = resolve_model_path("minilm")
    loaders = {"kexue": lambda: Transformer.from_pretrained(folder),
               "transformers": lambda: BertModel.from_pretrained(str(folder))}
    return {k: f() for k, f in loaders.items() if only in (None, k)}


def stsb_batches(data_root: Path, n: int):
    """Length-bucketed padded batches ``[(input_ids, attention_mask, real_tokens)]`` of STS-B sentences."""
    from kexue.data.tokenization import Tokenizer

    lines = (data_root / "stsb_en" / "stsbenchmark.tsv").read_text(encoding="utf-8").splitlines()
    col = lines[0].split("\t").index("sentence1")
    texts = [line.split("\t")[col] for line in lines[1:n + 1]]
    tok = Tokenizer.from_pretrained("minilm")
    rows = sorted(tok(texts, max_length=LENGTH)["input_ids"], key=len)
    batches = []
    for i in range(0, len(rows), BATCH):
        chunk = rows[i:i + BATCH]
        width = max(map(len, chunk))
        ids = torch.tensor([r + [0] * (width - len(r)) for r in chunk])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in chunk])
        batches.append((ids, mask, sum(map(len, chunk))))
    return batches


def run_forward(model, batches) -> float:
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        for ids, mask, _ in batches:
            model(input_ids=ids, attention_mask=mask)
    return time.perf_counter() - start


def run_train(model, batches, optimizer) -> float:
    model.train()
    start = time.perf_counter()
    for ids, mask, _ in batches:
        out = model(input_ids=ids, attention_mask=mask)
        loss = out.last_hidden_state.pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def measure_speed(models, workloads, repeats: int, train_repeats: int) -> dict:
    """Median tokens/s per (workload, mode, implementation); implementations alternate within each repeat."""
    results = {}
    optimizers = {k: torch.optim.AdamW(m.parameters(), lr=1e-7) for k, m in models.items()}
    for wname, batches in workloads.items():
        tokens = sum(b[2] for b in batches)
        for mode in ("forward", "train"):
            times = {k: [] for k in models}
            small = [(batches[0][0][:4], batches[0][1][:4], 0)]
            for name, model in models.items():  # warm-up on a small slice
                run_forward(model, small) if mode == "forward" else run_train(model, small, optimizers[name])
            for r in range(repeats if mode == "forward" else train_repeats):
                order = list(models) if r % 2 == 0 else list(reversed(list(models)))
                for name in order:
                    fn = run_forward if mode == "forward" else (lambda m, b, n=name: run_train(m, b, optimizers[n]))
                    times[name].append(fn(models[name], batches))
                    print(f"{wname} {mode} {name} repeat {r}: {times[name][-1]:.2f}s", file=sys.stderr, flush=True)
            for name in models:
                results[(wname, mode, name)] = tokens / statistics.median(times[name])
    return results


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def memory_child(impl: str, mode: str) -> None:
    """In a fresh process holding only ``impl``: peak RSS growth (MiB) during one forward or training step at
    32 x 128, sampled every 2 ms from /proc/self/statm (baseline: RSS after loading)."""
    torch.set_num_threads(2)
    model = load_models(only=impl)[impl]
    ids = torch.randint(1000, 20000, (BATCH, LENGTH))
    mask = torch.ones(BATCH, LENGTH, dtype=torch.long)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-7)
    base = _rss_kib()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_kib())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if mode == "forward":
        run_forward(model, [(ids, mask, 0)])
    else:
        run_train(model, [(ids, mask, 0)], opt)
    stop.set()
    sampler.join()
    peak[0] = max(peak[0], _rss_kib())
    print(json.dumps({"peak_mib": (peak[0] - base) / 1024}))


def measure_memory() -> dict:
    out = {}
    for impl in ("kexue", "transformers"):
        for mode in ("forward", "train"):
            proc = subprocess.run([sys.executable, __file__, "--memory-child", impl, mode], capture_output=True,
                                  text=True, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            out[(mode, impl)] = json.loads(proc.stdout.strip().splitlines()[-1])["peak_mib"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-repeats", type=int, default=3)
    parser.add_argument("--sentences", type=int, default=128)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("KEXUE_DATA", "../shared/data")))
    parser.add_argument("--shared-note", default="machine shared with other jobs during the run")
    parser.add_argument("--memory-child", nargs=2, metavar=("IMPL", "MODE"))
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    torch.set_num_threads(2)
    torch.manual_seed(0)
    models = load_models()
    fixed = [(torch.randint(1000, 20000, (BATCH, LENGTH)), torch.ones(BATCH, LENGTH, dtype=torch.long),
              BATCH * LENGTH)]
    workloads = {"32 x 128": fixed, f"STS-B bucketed ({args.sentences} sentences)": stsb_batches(args.data,
                                                                                                 args.sentences)}
    speed = measure_speed(models, workloads, args.repeats, args.train_repeats)
    memory = measure_memory()
    lines = ["## Encoder speed: kexue Transformer vs transformers BertModel (all-MiniLM-L6-v2)", "",
             provenance(seed=0),
             f"- transformers attention: `{models['transformers'].config._attn_implementation}` (its default); "
             f"kexue: SDPA + fused QKV; torch threads: 2; median of {args.repeats} repeats "
             f"(training rows: {args.train_repeats}); {args.shared_note}", "",
             "| workload | mode | kexue tokens/s | transformers tokens/s | ratio |", "|---|---|---|---|---|"]
    for wname in workloads:
        for mode in ("forward", "train"):
            k, t = speed[(wname, mode, "kexue")], speed[(wname, mode, "transformers")]
            lines.append(f"| {wname} | {mode} | {k:,.0f} | {t:,.0f} | {k / t:.2f}x |")
    lines += ["", "| peak RSS growth at 32 x 128 | kexue MiB | transformers MiB | ratio |", "|---|---|---|---|"]
    for mode in ("forward", "train"):
        k, t = memory[(mode, "kexue")], memory[(mode, "transformers")]
        lines.append(f"| {mode} | {k:.0f} | {t:.0f} | {k / t:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_section("encoder_speed", text)


if __name__ == "__main__":
    main()
