"""Pretraining speed: kexue RoFormerV2 vs kexue BERT vs transformers' BertForMaskedLM at the same size.

One training step = forward + MLM loss + backward + AdamW step, at batch ``--batch`` x length 128 (every token
real: fixed-length rows, no padding), 15% of the positions of each row carrying a label (the same positions for
every model). Rows:

* ``kexue RoFormerV2 (masked head)`` / ``kexue BERT (masked head)``: :class:`kexue.tasks.pretrain_model.
  PretrainingModel`, what ``kexue pretrain`` trains: the vocabulary projection runs only at the labelled positions.
* ``... (full logits)``: the same encoder and head, logits at every position and the cross-entropy over the
  labelled ones (``ignore_index=-100``), i.e. the loss the way Hugging Face computes it, so that the gain of the
  masked-positions-only head is attributable on its own.
* ``transformers BertForMaskedLM``: its own ``labels=`` loss (full logits), its default attention (SDPA).

Same size for all (``--hidden`` 256, ``--layers`` 4, ``--heads`` 4, FFN 4x, vocabulary 8000, dropout 0.1), no
NSP; fp32 and bf16 autocast (``torch.autocast("cpu", torch.bfloat16)``, fp32 master weights and AdamW). Timings
interleave the implementations in one process (the order rotates every repeat), one torch thread, median over
repeats. Peak memory: a fresh subprocess per (implementation, precision) builds the model and AdamW, reads its
current RSS (``VmRSS`` of ``/proc/self/status``), runs two training steps and reports the peak RSS ``VmHWM`` minus
that RSS (the growth of the process high-water mark over the steps: activations, gradients, Adam state).
``VmHWM`` belongs to the process's own address space; ``getrusage(RUSAGE_SELF).ru_maxrss`` is not used because
Linux carries it over from the parent across fork + exec (it read the parent's 900 MiB for every row).

The article (https://kexue.fm/archives/8998) reports RoFormerV2 1.3x faster than RoBERTa at length 128 (base
size, RTX 3090 GPU); it is set beside ours, a different model size and a CPU.

Usage: python bench/pretrain_speed.py [--batch 16] [--repeats 5] [--steps 3]
Writes the "pretrain_speed" section of docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import provenance, write_section  # noqa: E402

LENGTH, VOCAB, MASK_RATE = 128, 8000, 0.15
IMPLS = ("kexue RoFormerV2 (masked head)", "kexue RoFormerV2 (full logits)", "kexue BERT (masked head)",
         "kexue BERT (full logits)", "transformers BertForMaskedLM")
PRECISIONS = ("fp32", "bf16")


def build(impl: str, hidden: int, layers: int, heads: int):
    """``(model, step_loss)``: a new model of ``impl`` and ``step_loss(model, batch) -> scalar loss``."""
    if impl.startswith("transformers"):
        from transformers import BertConfig, BertForMaskedLM

        config = BertConfig(vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                            intermediate_size=4 * hidden, max_position_embeddings=512, pad_token_id=0)
        return BertForMaskedLM(config), lambda m, b: m(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                                                       token_type_ids=b["token_type_ids"], labels=b["labels"]).loss
    from kexue.models.config import TransformerConfig
    from kexue.tasks.pretrain_model import PretrainingModel, roformer_v2_init_

    family = "roformer_v2" if "RoFormerV2" in impl else "bert"
    config = TransformerConfig(family=family, vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers,
                               num_attention_heads=heads, intermediate_size=4 * hidden, max_position_embeddings=512,
                               pad_token_id=0, pooler=False, mlm=True, nsp=False)
    model = PretrainingModel(config)
    if family == "roformer_v2":
        roformer_v2_init_(model, layers)
    if "masked head" in impl:
        return model, lambda m, b: m(b["input_ids"], b["attention_mask"], b["token_type_ids"], b["labels"])["loss"]
    return model, full_logits_loss


def full_logits_loss(model, batch) -> torch.Tensor:
    """MLM loss with logits at every position (Hugging Face's way): ``[B, L, V]`` logits, mean cross-entropy
    over the labelled positions."""
    out = model.encoder(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    logits = model.mlm_head(out.last_hidden_state, model.encoder.embeddings.word_embeddings.weight)
    return F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=-100)


def make_batch(batch: int, seed: int) -> dict[str, torch.Tensor]:
    """``batch`` x 128 random token rows (ids 5..VOCAB-1), 15% of each row's positions labelled."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (batch, LENGTH), generator=g)
    labels = torch.full_like(ids, -100)
    n = round(MASK_RATE * LENGTH)
    for row in range(batch):
        where = torch.randperm(LENGTH, generator=g)[:n]
        labels[row, where] = ids[row, where]
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids),
            "labels": labels}


def train_steps(model, step_loss, optimizer, batch, steps: int, precision: str) -> float:
    """Seconds for ``steps`` training steps (forward, loss, backward, AdamW step)."""
    model.train()
    context = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else nullcontext
    start = time.perf_counter()
    for _ in range(steps):
        with context():
            loss = step_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def measure_speed(args) -> dict[tuple[str, str], float]:
    """Median tokens/s per (precision, implementation), implementations interleaved with a rotating order."""
    built = {impl: build(impl, args.hidden, args.layers, args.heads) for impl in IMPLS}
    optim = {impl: torch.optim.AdamW(m.parameters(), lr=1e-5) for impl, (m, _) in built.items()}
    batch = make_batch(args.batch, seed=0)
    tokens = args.batch * LENGTH * args.steps
    speed = {}
    for precision in PRECISIONS:
        for impl, (model, fn) in built.items():          # warm-up (allocator, oneDNN kernels, Adam state)
            train_steps(model, fn, optim[impl], batch, 1, precision)
        times = {impl: [] for impl in IMPLS}
        for r in range(args.repeats):
            order = list(IMPLS[r % len(IMPLS):] + IMPLS[:r % len(IMPLS)])
            for impl in order:
                model, fn = built[impl]
                times[impl].append(train_steps(model, fn, optim[impl], batch, args.steps, precision))
                print(f"{precision} {impl} repeat {r}: {times[impl][-1]:.2f}s", file=sys.stderr, flush=True)
        for impl in IMPLS:
            speed[(precision, impl)] = tokens / statistics.median(times[impl])
    return speed


def _status_kib(field: str) -> int:
    """``VmRSS`` / ``VmHWM`` (KiB) of this process from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def memory_child(impl: str, precision: str, args) -> None:
    """Prints ``{"growth_mib", "peak_mib"}``: VmHWM after two steps minus the RSS before them, and VmHWM."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, fn = build(impl, args.hidden, args.layers, args.heads)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    batch = make_batch(args.batch, seed=0)
    before = _status_kib("VmRSS")
    train_steps(model, fn, optimizer, batch, 2, precision)
    peak = _status_kib("VmHWM")
    print(json.dumps({"growth_mib": (peak - before) / 1024, "peak_mib": peak / 1024}))


def measure_memory(args) -> dict[tuple[str, str], dict[str, float]]:
    out = {}
    for precision in PRECISIONS:
        for impl in IMPLS:
            cmd = [sys.executable, __file__, "--memory-child", impl, precision, "--batch", str(args.batch),
                   "--hidden", str(args.hidden), "--layers", str(args.layers), "--heads", str(args.heads)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                  env={**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"})
            out[(precision, impl)] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def parameters(args) -> dict[str, int]:
    return {impl: sum(p.numel() for p in build(impl, args.hidden, args.layers, args.heads)[0].parameters())
            for impl in IMPLS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="training steps per timed repeat")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--shared-note", default="machine shared with other jobs during the run")
    parser.add_argument("--memory-child", nargs=2, metavar=("IMPL", "PRECISION"))
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child, args)
        return
    torch.set_num_threads(1)
    torch.manual_seed(0)
    load_before, start = os.getloadavg(), time.perf_counter()
    n_params = parameters(args)
    speed = measure_speed(args)
    memory = measure_memory(args)
    seconds, load_after = time.perf_counter() - start, os.getloadavg()
    ref = "transformers BertForMaskedLM"
    lines = ["## Pretraining speed: kexue RoFormerV2 vs kexue BERT vs transformers BertForMaskedLM", "",
             provenance(seed=0),
             f"- size: hidden {args.hidden}, {args.layers} layers, {args.heads} heads, FFN {4 * args.hidden}, "
             f"vocabulary {VOCAB}, dropout 0.1, no NSP; batch {args.batch} x length {LENGTH} (all tokens real, 15% "
             "labelled, same positions for every model); one step = forward + MLM loss + backward + AdamW",
             f"- 1 torch thread; median of {args.repeats} interleaved repeats of {args.steps} steps (order rotated "
             f"each repeat), one warm-up step each; {seconds:.0f} s in all; {args.shared_note}",
             f"- load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; after: "
             f"{', '.join(f'{x:.2f}' for x in load_after)} (2 cores)",
             "- memory: fresh subprocess per row; growth = peak RSS (`VmHWM`) after 2 training steps minus the RSS "
             "just before them (activations, gradients, AdamW state); peak = the process's `VmHWM` (imports "
             "included; transformers is imported only by its own row)",
             "", "| model | parameters | precision | tokens/s | vs transformers | vs kexue BERT (same head) "
             "| memory growth MiB | process peak MiB |", "|---|---|---|---|---|---|---|---|"]
    for precision in PRECISIONS:
        for impl in IMPLS:
            s = speed[(precision, impl)]
            same_head = impl.replace("RoFormerV2", "BERT")
            vs_bert = f"{s / speed[(precision, same_head)]:.2f}x" if "RoFormerV2" in impl else "-"
            mem = memory[(precision, impl)]
            lines.append(f"| {impl} | {n_params[impl] / 1e6:.2f}M | {precision} | {s:,.0f} | "
                         f"{s / speed[(precision, ref)]:.2f}x | {vs_bert} | {mem['growth_mib']:.0f} | "
                         f"{mem['peak_mib']:.0f} |")
    lines += ["", "Published (https://kexue.fm/archives/8998, base size, RTX 3090, length 128): RoFormerV2 base 1.3x "
              "the training speed of RoBERTa base (1.2x at length 512). Ours: the `vs kexue BERT (same head)` column "
              "of the RoFormerV2 rows is the architecture's gain alone (same code, same head); `vs transformers` of "
              "`kexue RoFormerV2 (full logits)` is the article's comparison (V2 vs a BERT/RoBERTa implementation, "
              "full-logit MLM loss); the masked-head rows add the gain of projecting only the labelled positions."]
    text = "\n".join(lines) + "\n"
    print(text)
    write_section("pretrain_speed", text)


if __name__ == "__main__":
    main()
