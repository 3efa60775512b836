"""Training techniques benchmark (issue 5): memory of accumulation inside the momentum, and quality/cost of each
technique on sst2 (all-MiniLM-L6-v2, a fixed training subset, full dev) and sentiment_zh (a small from-scratch BERT).

Memory: all-MiniLM-L6-v2 trained for ``--memory-steps`` micro-batches (batch 16, real sst2 sentences) with
(a) ``torch.optim.AdamW`` + explicit accumulation (k=8, ``.grad`` kept across micro-batches) and (b)
``kexue.optim.AccumAdamW(accumulation_steps=8)`` (``zero_grad(set_to_none=True)`` after every micro-step). Each runs
in a fresh subprocess of this script; reported: the persistent optimizer/gradient buffers at the start of a
micro-batch's forward (summed tensor sizes of optimizer state + existing ``.grad``), the peak RSS growth over the
RSS after model loading (``ru_maxrss``), and on CUDA ``max_memory_allocated``.

Quality/cost: one fresh subprocess per (dataset, technique, seed) running :func:`kexue.tasks.classification.
train_classify`; reported: best dev accuracy (mean ± std over seeds), training seconds per epoch (evaluation
excluded), peak RSS of the process, trainable parameters.

Usage (complete benchmark):
    python bench/training.py --seeds 0 1 2 --epochs 3 --train-limit 2000
Reduced (what fits on a shared CPU): e.g. --seeds 0 --epochs 1 --techniques baseline fgm lora --datasets sst2
Writes the "training" section of docs/RESULTS.md.

FGM epsilon sweep (issue 9): ``--fgm-epsilons 0.05 0.1 0.3 1 --fgm-modes adv_only clean_plus_adv`` trains FGM at every
(ε, update mode) pair (plus the techniques of ``--techniques``, e.g. only ``baseline``) and writes the "fgm-sweep"
section instead (``--skip-memory`` is implied).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import provenance, write_section  # noqa: E402

# technique -> (ClassifyConfig overrides, learning-rate factor, batch-size divisor)
TECHNIQUES = {
    "baseline": ({}, 1.0, 1),
    "fgm": ({"adversarial": "fgm", "epsilon": 0.1}, 1.0, 1),
    "gradient-penalty": ({"gradient_penalty": 1.0}, 1.0, 1),
    "child-tuning-f": ({"child_tuning": "F", "reserve_p": 0.3}, 1.0, 1),
    "child-tuning-d": ({"child_tuning": "D", "reserve_p": 0.3}, 1.0, 1),
    "accum4-classic": ({"accumulation_steps": 4}, 1.0, 4),
    "accum4-momentum": ({"accumulation_steps": 4, "optimizer": "accum-adamw"}, 1.0, 4),
    "ema": ({"ema": 0.99}, 1.0, 1),
    "lora": ({"lora_rank": 8}, 10.0, 1),
    "ladder-side": ({"ladder_side": True}, 10.0, 1),
}
DATASETS = {"sst2": {"model": "minilm", "lr": 1e-4, "max_length": 64},
            "sentiment_zh": {"model": "scratch", "lr": 5e-4, "max_length": 128}}
BATCH = 32


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (``ru_maxrss``, KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_worker(method: str, k: int, steps: int, data: str) -> dict:
    """Train MiniLM for ``steps`` micro-batches with explicit accumulation or AccumAdamW; measure buffers."""
    import torch

    from kexue.data.collate import pad_batch
    from kexue.data.readers.classification import load_classification
    from kexue.optim import AccumAdamW
    from kexue.tasks.classification import ClassifyConfig, build_model, compute_loss, make_features

    torch.manual_seed(0)
    train = load_classification("sst2", "train", root=data)[: 16 * steps]
    model = build_model(ClassifyConfig(max_length=64), train, 2)
    model.dropout.p = 0.0
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).train()
    feats = make_features(model, train)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.AdamW(params, lr=1e-5) if method == "explicit"
           else AccumAdamW(params, lr=1e-5, accumulation_steps=k))
    base_rss = rss_mb()
    persistent = 0
    for t in range(steps):
        batch = {key: v.to(device) for key, v in pad_batch(feats[16 * t: 16 * (t + 1)], pad_token_id=0).items()}
        buffers = sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values()
                      if torch.is_tensor(v)) + sum(p.grad.numel() * p.grad.element_size() for p in params
                                                    if p.grad is not None)
        if t >= k:  # steady state: after the first update both optimizers hold their moments
            persistent = max(persistent, buffers)
        loss = compute_loss(model, batch)
        if method == "explicit":
            (loss / k).backward()
            if (t + 1) % k == 0:
                opt.step()
                opt.zero_grad(set_to_none=True)
        else:
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    out = {"method": method, "persistent_mb": persistent / 2**20, "peak_rss_growth_mb": peak_rss_mb() - base_rss,
           "param_mb": sum(p.numel() * p.element_size() for p in params) / 2**20}
    if device == "cuda":
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def fgm_technique(epsilon: float, mode: str) -> str:
    """The technique name of one FGM sweep point, registered in :data:`TECHNIQUES`."""
    name = f"fgm-{mode}-eps{epsilon:g}"
    TECHNIQUES[name] = ({"adversarial": "fgm", "epsilon": epsilon, "fgm_loss_mode": mode}, 1.0, 1)
    return name


def quality_worker(dataset: str, technique: str, seed: int, epochs: int, train_limit: int | None,
                   eval_limit: int | None, out: Path) -> dict:
    """One training run; returns dev accuracy, seconds per epoch (training only), peak RSS, parameters."""
    from kexue.tasks.classification import ClassifyConfig, train_classify
    from kexue.tasks.common import ScratchModel
    from kexue.train import Hook, TrainerConfig

    class EpochTimer(Hook):
        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_epoch_begin(self, trainer, epoch):
            self.start = time.perf_counter()

        def on_epoch_end(self, trainer, epoch):
            self.seconds.append(time.perf_counter() - self.start)

    spec = DATASETS[dataset]
    if technique.startswith("fgm-") and technique not in TECHNIQUES:  # a sweep point: fgm-<mode>-eps<ε>
        mode, _, eps = technique[4:].rpartition("-eps")
        fgm_technique(float(eps), mode)
    overrides, lr_factor, divisor = TECHNIQUES[technique]
    cfg = ClassifyConfig(model=spec["model"], data=dataset, max_length=spec["max_length"], train_limit=train_limit,
                         eval_limit=eval_limit, eval_batch_size=256,
                         scratch=ScratchModel(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                              intermediate_size=512, vocab_size=6000), **overrides)
    tcfg = TrainerConfig(output_dir=out, epochs=epochs, batch_size=BATCH // divisor, seed=seed,
                         learning_rate=spec["lr"] * lr_factor, warmup_ratio=0.1, progress_bar=False,
                         metric_for_best="accuracy", log_every=50)
    timer = EpochTimer()
    results = train_classify(cfg, tcfg, log=lambda _m: None, extra_hooks=[timer])
    return {"dataset": dataset, "technique": technique, "seed": seed, "accuracy": results["after"]["dev"]["accuracy"],
            "seconds_per_epoch": statistics.mean(timer.seconds), "peak_rss_mb": peak_rss_mb(),
            "trainable": results["techniques"]["parameters"]["trainable"]}


def _subprocess(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--techniques", nargs="*", default=list(TECHNIQUES), choices=list(TECHNIQUES))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-limit", type=int, default=2000)
    parser.add_argument("--eval-limit", type=int, default=None, help="default: the full dev split")
    parser.add_argument("--memory-steps", type=int, default=16)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--data", default=os.environ.get("KEXUE_DATA"))
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "kexue-bench-training")
    parser.add_argument("--fgm-epsilons", type=float, nargs="*", default=[],
                        help="FGM sweep: these ε (writes the fgm-sweep section)")
    parser.add_argument("--fgm-modes", nargs="+", default=["adv_only", "clean_plus_adv"])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        job = json.loads(args.worker)
        if job["kind"] == "memory":
            print(json.dumps(memory_worker(job["method"], 8, job["steps"], job["data"])))
        else:
            print(json.dumps(quality_worker(job["dataset"], job["technique"], job["seed"], job["epochs"],
                                            job["train_limit"], job["eval_limit"], Path(job["out"]))))
        return
    if not args.data:
        parser.error("set KEXUE_DATA or pass --data")
    if args.memory_steps < 16:
        parser.error("--memory-steps must be >= 16 (two accumulation cycles of k=8)")
    os.environ["KEXUE_DATA"] = args.data
    sweep = bool(args.fgm_epsilons)
    if sweep:
        args.skip_memory = True
        args.techniques = [*args.techniques, *(fgm_technique(e, m) for m in args.fgm_modes
                                                for e in args.fgm_epsilons)]
    title = "FGM ε sweep (issue 9)" if sweep else "Training techniques (issue 5)"
    lines = [f"## {title}", "", provenance(" ".join(map(str, args.seeds)))]
    if not args.skip_memory:
        mem = {m: _subprocess(["--worker", json.dumps({"kind": "memory", "method": m, "steps": args.memory_steps,
                                                        "data": args.data})]) for m in ("explicit", "in-momentum")}
        e, i = mem["explicit"], mem["in-momentum"]
        lines += ["### Memory: all-MiniLM-L6-v2, AdamW + explicit accumulation (k=8) vs AccumAdamW (k=8)", "",
                  f"Batch 16, max length 64, {args.memory_steps} micro-batches of sst2 train; trainable parameters "
                  f"{e['param_mb']:.1f} MB (fp32). Persistent buffers = optimizer state + `.grad` alive at the "
                  "start of a micro-batch's forward.", "",
                  "| method | persistent buffers (MB) | peak RSS growth (MB) |" + (" CUDA peak (MB) |" if
                                                                                "cuda_peak_mb" in e else ""),
                  "|---|---|---|" + ("---|" if "cuda_peak_mb" in e else "")]
        for name, r in (("AdamW + explicit accumulation", e), ("AccumAdamW (in momentum)", i)):
            lines.append(f"| {name} | {r['persistent_mb']:.1f} | {r['peak_rss_growth_mb']:.1f} |"
                         + (f" {r['cuda_peak_mb']:.1f} |" if "cuda_peak_mb" in r else ""))
        saved = e["persistent_mb"] - i["persistent_mb"]
        lines += ["", f"Saving in persistent buffers: {saved:.1f} MB = {saved / e['param_mb']:.2f} x the parameter "
                  f"size; ratio in-momentum / explicit = {i['persistent_mb'] / e['persistent_mb']:.3f}. Peak RSS "
                  f"growth ratio = {i['peak_rss_growth_mb'] / max(e['peak_rss_growth_mb'], 1e-9):.3f} (RSS includes "
                  "activations and allocator caching, so the saving shows less there).", ""]
    for dataset in args.datasets:
        rows = []
        for technique in args.techniques:
            runs = []
            for seed in args.seeds:
                out = args.work / f"{dataset}-{technique}-{seed}"
                if out.exists():
                    subprocess.run(["rm", "-rf", str(out)], check=True)
                job = {"kind": "quality", "dataset": dataset, "technique": technique, "seed": seed,
                       "epochs": args.epochs, "train_limit": args.train_limit, "eval_limit": args.eval_limit,
                       "out": str(out)}
                runs.append(_subprocess(["--worker", json.dumps(job)]))
                print(json.dumps(runs[-1]), flush=True)
            rows.append((technique, runs))
        spec = DATASETS[dataset]
        lines += [f"### {dataset}: {spec['model']}, train subset {args.train_limit}, dev "
                  f"{'full' if args.eval_limit is None else args.eval_limit}, {args.epochs} epoch(s), batch {BATCH}, "
                  f"lr {spec['lr']} (LoRA / Ladder x10), seeds {args.seeds}", "",
                  "| technique | dev accuracy | s / epoch (train) | peak RSS (MB) | trainable params |",
                  "|---|---|---|---|---|"]
        for technique, runs in rows:
            lines.append(f"| {technique} | {_fmt([r['accuracy'] for r in runs])} | "
                         f"{_fmt([r['seconds_per_epoch'] for r in runs])} | "
                         f"{max(r['peak_rss_mb'] for r in runs):.0f} | {runs[0]['trainable']:,} |")
        lines.append("")
    lines.append("Techniques: " + "; ".join(f"{k}: {v[0] or 'AdamW'}" for k, v in TECHNIQUES.items()
                                             if k in args.techniques) + ". accum4-* use micro-batches of "
                 f"{BATCH // 4} (effective batch {BATCH}).")
    print(chr(10).join(lines))
    print(f"wrote {write_section('fgm-sweep' if sweep else 'training', chr(10).join(lines))}")


if __name__ == "__main__":
    main()
