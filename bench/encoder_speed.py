"""Encoder speed: kexue's Transformer vs transformers' BertModel on the same all-MiniLM-L6-v2 weights.

Rows: forward tokens/s and training-step tokens/s (forward + backward + AdamW step) at batch 32 x length 128,
and on length-bucketed real STS-B sentences (sorted by length, batches of 32 padded to the batch maximum;
tokens = real tokens). Timings alternate the two implementations in one process on 2 CPU threads and
report the median of several repeats; peak memory is the RSS growth of a fresh subprocess running one
forward / one training step (RSS sampled every 2 ms, minus the RSS after loading).

bf16 rows: both models cast to bfloat16 once (``model.to(torch.bfloat16)``, the inference path of
``kexue encode --precision bf16``), forward only; the bf16 forward's GEMM throughput is set against the bf16
matmul peak measured in the same run (``[4096, 1536] x [1536, 1536]`` GEMMs, 2 threads).

encode rows: ``SentenceEncoder.encode`` (what ``kexue encode`` runs) against
``sentence_transformers.SentenceTransformer.encode`` on the same all-MiniLM-L6-v2 folder and the same
``--encode-sentences`` STS-B sentences (sentence1 then sentence2 of the file, in order), same batch size, max
length 128, L2-normalised, fp32 and bf16 (both models cast once); tokenisation included, model loading not.

Usage: python bench/encoder_speed.py [--repeats 5] [--train-repeats 3] [--sentences 128] [--encode-sentences 2000]
    [--encode-repeats 3] [--data $KEXUE_DATA]
Writes the "encoder_speed" section of docs/RESULTS.md (with the load average before and after the run).
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


def measure_speed(models, workloads, repeats: int, train_repeats: int, modes=("forward", "train")) -> dict:
    """Median tokens/s per (workload, mode, implementation); implementations alternate within each repeat."""
    results = {}
    optimizers = ({k: torch.optim.AdamW(m.parameters(), lr=1e-7) for k, m in models.items()}
                  if "train" in modes else {})
    for wname, batches in workloads.items():
        tokens = sum(b[2] for b in batches)
        for mode in modes:
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


def forward_flops_per_token(config, length: int) -> float:
    """GEMM FLOPs per token of one forward at sequence length ``length``: projections + QK^T and PV."""
    h, i = config.hidden_size, config.intermediate_size
    per_layer = 2 * (h * 3 * h + h * h + 2 * h * i) + 2 * 2 * length * h
    return float(config.num_hidden_layers * per_layer)


def matmul_peak_gflops(dtype: torch.dtype, repeats: int = 10) -> float:
    """Best-of-``repeats`` GFLOP/s of a ``[4096, 1536] x [1536, 1536]`` matmul in ``dtype`` (2 threads)."""
    a = torch.randn(4096, 1536, dtype=dtype)
    b = torch.randn(1536, 1536, dtype=dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * 4096 * 1536 * 1536 / best / 1e9


def stsb_sentences(data_root: Path, n: int) -> list[str]:
    """The first ``n`` sentences of STS-B's tsv: all sentence1 values, then sentence2 (file order)."""
    lines = (data_root / "stsb_en" / "stsbenchmark.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    rows = [line.split("\t") for line in lines[1:]]
    texts = [r[header.index("sentence1")] for r in rows] + [r[header.index("sentence2")] for r in rows]
    return texts[:n]


def measure_encode(texts: list[str], batch_size: int, repeats: int) -> tuple[dict, dict]:
    """Median sentences/s of kexue's and sentence-transformers' encode in fp32 and bf16 (alternating), and
    the minimum cosine between the two libraries' vectors per precision."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from kexue.embeddings import SentenceEncoder
    from kexue.models import resolve_model_path

    folder = str(resolve_model_path("minilm"))
    speed, agreement = {}, {}
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        kx = SentenceEncoder.from_pretrained("minilm", pooling="last-avg", max_length=128).to(dtype)
        st = SentenceTransformer(folder, device="cpu").to(dtype)
        st.max_seq_length = 128
        fns = {"kexue": lambda: kx.encode(texts, batch_size=batch_size, normalize=True),
               "sentence-transformers": lambda: st.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                                          convert_to_numpy=True)}
        vecs = {name: np.asarray(fn()[:200], dtype=np.float32) for name, fn in fns.items()}  # warm-up
        agreement[precision] = float((vecs["kexue"] * vecs["sentence-transformers"]).sum(-1).min())
        times = {name: [] for name in fns}
        for r in range(repeats):
            for name in (list(fns) if r % 2 == 0 else list(reversed(list(fns)))):
                start = time.perf_counter()
                fns[name]()
                times[name].append(time.perf_counter() - start)
                print(f"encode {precision} {name} repeat {r}: {times[name][-1]:.2f}s", file=sys.stderr, flush=True)
        for name in fns:
            speed[(precision, name)] = len(texts) / statistics.median(times[name])
    return speed, agreement


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
    parser.add_argument("--encode-sentences", type=int, default=2000)
    parser.add_argument("--encode-repeats", type=int, default=3)
    parser.add_argument("--encode-batch-size", type=int, default=64)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("KEXUE_DATA", "../shared/data")))
    parser.add_argument("--shared-note", default="machine shared with other jobs during the run")
    parser.add_argument("--memory-child", nargs=2, metavar=("IMPL", "MODE"))
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    torch.set_num_threads(2)
    torch.manual_seed(0)
    load_before = os.getloadavg()
    models = load_models()
    fixed = [(torch.randint(1000, 20000, (BATCH, LENGTH)), torch.ones(BATCH, LENGTH, dtype=torch.long),
              BATCH * LENGTH)]
    workloads = {"32 x 128": fixed, f"STS-B bucketed ({args.sentences} sentences)": stsb_batches(args.data,
                                                                                                 args.sentences)}
    speed = measure_speed(models, workloads, args.repeats, args.train_repeats)
    peak = matmul_peak_gflops(torch.bfloat16)
    bf16_models = {k: m.to(torch.bfloat16) for k, m in models.items()}
    speed_bf16 = measure_speed(bf16_models, workloads, args.repeats, 0, modes=("forward",))
    flops = forward_flops_per_token(models["kexue"].config, LENGTH)
    attn_impl = models["transformers"].config._attn_implementation
    del models, bf16_models
    texts = stsb_sentences(args.data, args.encode_sentences)
    encode_speed, agreement = measure_encode(texts, args.encode_batch_size, args.encode_repeats)
    memory = measure_memory()
    load_after = os.getloadavg()
    lines = ["## Encoder speed: kexue Transformer vs transformers BertModel (all-MiniLM-L6-v2)", "",
             provenance(seed=0),
             f"- transformers attention: `{attn_impl}` (its default); kexue: SDPA + fused QKV, at inference in "
             "bf16 the bias, GELU and residual adds fused into oneDNN GEMMs (`kexue.nn.fused`), in fp32 MKL GEMMs "
             "(exact parity) with in-place GELU and residual adds; torch threads: 2; "
             f"median of {args.repeats} repeats (training rows: {args.train_repeats}; encode rows: "
             f"{args.encode_repeats}); {args.shared_note}",
             f"- load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; after: "
             f"{', '.join(f'{x:.2f}' for x in load_after)} (2 cores)", "",
             "| workload | precision | mode | kexue tokens/s | transformers tokens/s | ratio |",
             "|---|---|---|---|---|---|"]
    for wname in workloads:
        for mode in ("forward", "train"):
            k, t = speed[(wname, mode, "kexue")], speed[(wname, mode, "transformers")]
            lines.append(f"| {wname} | fp32 | {mode} | {k:,.0f} | {t:,.0f} | {k / t:.2f}x |")
        k, t = speed_bf16[(wname, "forward", "kexue")], speed_bf16[(wname, "forward", "transformers")]
        lines.append(f"| {wname} | bf16 weights | forward | {k:,.0f} | {t:,.0f} | {k / t:.2f}x |")
    achieved = speed_bf16[("32 x 128", "forward", "kexue")] * flops / 1e9
    lines += ["", f"bf16 forward at 32 x 128: {flops / 1e6:.1f} MFLOP/token of GEMMs -> {achieved:.0f} GFLOP/s, "
              f"{100 * achieved / peak:.0f}% of the bf16 matmul peak measured in this run ({peak:.0f} GFLOP/s).",
              "", f"| `encode`, {len(texts)} STS-B sentences, batch {args.encode_batch_size}, max length 128 "
              "| kexue sentences/s | sentence-transformers sentences/s | ratio | min cosine kexue vs s-t |",
              "|---|---|---|---|---|"]
    for precision in ("fp32", "bf16"):
        k, t = encode_speed[(precision, "kexue")], encode_speed[(precision, "sentence-transformers")]
        lines.append(f"| {precision} | {k:,.0f} | {t:,.0f} | {k / t:.2f}x | {agreement[precision]:.5f} |")

    def ratio(table, key_k, key_t):
        return table[key_k] / table[key_t]

    checks = [("forward fp32 (32 x 128) >= 1.15x transformers",
               ratio(speed, ("32 x 128", "forward", "kexue"), ("32 x 128", "forward", "transformers")), 1.15),
              ("forward bf16 (32 x 128) >= 1.15x transformers",
               ratio(speed_bf16, ("32 x 128", "forward", "kexue"), ("32 x 128", "forward", "transformers")), 1.15),
              ("encode fp32 >= 1.3x sentence-transformers",
               ratio(encode_speed, ("fp32", "kexue"), ("fp32", "sentence-transformers")), 1.3),
              ("encode bf16 >= 1.3x sentence-transformers",
               ratio(encode_speed, ("bf16", "kexue"), ("bf16", "sentence-transformers")), 1.3),
              ("bf16 forward >= 60% of the bf16 matmul peak", achieved / peak, 0.6)]
    lines += ["", "| target (issue 9) | measured | met |", "|---|---|---|"]
    lines += [f"| {name} | {value:.3f} | {'yes' if value >= goal else 'no'} |" for name, value, goal in checks]
    lines += ["", "| peak RSS growth at 32 x 128 | kexue MiB | transformers MiB | ratio |", "|---|---|---|---|"]
    for mode in ("forward", "train"):
        k, t = memory[(mode, "kexue")], memory[(mode, "transformers")]
        lines.append(f"| {mode} | {k:.0f} | {t:.0f} | {k / t:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_section("encoder_speed", text)


if __name__ == "__main__":
    main()
