"""``bench/sts_matrix.py --part match``: the Sohu 2021 multi-task matcher (https://kexue.fm/archives/8337) at a
small budget: ``train match`` on afqmc, stsb_zh, simclue_sample with and without conditional LayerNorm, and one
model per task; test accuracy / F1 per task and the Sohu 2021 fragments (``eval match``)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from _results import provenance

from kexue.data.registry import data_root


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
