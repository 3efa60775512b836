"""Summary of the `make demo` STS run: zero-shot vs fine-tuned Spearman on dev and test, the dev curve, wall time.

Usage: ``python bench/demo_report.py RUN_FOLDER START_EPOCH_SECONDS``. Reads ``results.json`` (before/after),
``metrics.jsonl`` (the dev evaluations during training) and ``config.json`` (precision, learning rate) of the run.
Exits with status 1 when the fine-tuned test Spearman is not above zero-shot, so a demo that stops showing the
gain fails loudly.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def cpu_flags() -> set[str]:
    """The CPU feature flags of this machine (empty where /proc/cpuinfo is unavailable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def main() -> int:
    run, start = Path(sys.argv[1]), float(sys.argv[2])
    results = json.loads((run / "results.json").read_text())
    config = json.loads((run / "config.json").read_text())
    options = config.get("options", config)
    trainer = options["trainer"]
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = [e for e in evals if e.get("event") == "eval" and "spearman" in e]
    before, after = results["before"], results["after"]
    print("\n=== kexue demo: CoSENT fine-tuning of all-MiniLM-L6-v2 on STS-B (Spearman x100) ===")
    print(f"{'':12}{'dev':>8}{'test':>8}")
    print(f"{'zero-shot':12}{before['dev']['spearman']:8.2f}{before['test']['spearman']:8.2f}")
    print(f"{'fine-tuned':12}{after['dev']['spearman']:8.2f}{after['test']['spearman']:8.2f}   (best dev checkpoint)")
    print("\ndev curve during the epoch:")
    print(f"  step {0:>4}: {before['dev']['spearman']:.2f}  (zero-shot)")
    for e in evals:
        print(f"  step {e['step']:>4}: {e['spearman']:.2f}")
    precision = trainer.get("precision", "fp32")
    note = ""
    if precision == "bf16":
        flags = cpu_flags()
        has = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
        note = (f" bf16 autocast ({'this CPU has ' + ', '.join(has) if has else 'no bf16 CPU instructions found'}; "
                "same quality as fp32 on STS-B, docs/RESULTS.md).")
    print(f"\nsettings: lr {trainer['learning_rate']:g}, batch {trainer['batch_size']}, {trainer['epochs']} epoch, "
          f"precision {precision}.{note}")
    print(f"wall time of the demo (model load, zero-shot eval, training, dev evals, test): {time.time() - start:.0f} s; "
          f"training alone {results['train_seconds']:.0f} s")
    gain = after["test"]["spearman"] - before["test"]["spearman"]
    if gain <= 0:
        print(f"FAIL: test Spearman {after['test']['spearman']:.2f} is not above zero-shot "
              f"{before['test']['spearman']:.2f}")
        return 1
    print(f"test Spearman {after['test']['spearman']:.2f} > zero-shot {before['test']['spearman']:.2f} "
          f"(+{gain:.2f}); dev +{after['dev']['spearman'] - before['dev']['spearman']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
