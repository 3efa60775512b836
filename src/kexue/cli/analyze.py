"""``kexue analyze simsiam|leaderboard|gradient-penalty|unargmaxable``: the analysis articles as commands
(:mod:`kexue.analysis`).

* ``simsiam`` — integrate SimSiam's toy dynamics in its three modes, print the table and limits, plot them
  (https://kexue.fm/archives/7980);
* ``leaderboard`` — AM/GM/HM of a leaderboard table over one checked task set, their ranks and Kendall τ
  (https://kexue.fm/archives/8783);
* ``gradient-penalty`` — per-example input- vs parameter-gradient norms over a trained classifier's checkpoints
  (https://kexue.fm/archives/8796);
* ``unargmaxable`` — the output-layer classes no input can make the argmax, exact LP (https://kexue.fm/archives/9046).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from kexue.cli.app import app
from kexue.errors import ConfigError, DataFormatError

analyze_app = typer.Typer(help="The analysis articles as tools (SimSiam dynamics, leaderboard means, gradient "
                               "penalties).", no_args_is_help=True)
app.add_typer(analyze_app, name="analyze")


@analyze_app.command("simsiam")
def simsiam_command(
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write the three trajectories to this PNG.")] = None,
    phi0: Annotated[float, typer.Option("--phi0", help="Initial predictor φ(0).")] = 0.6,
    theta0: Annotated[float, typer.Option("--theta0", help="Initial encoder θ(0).")] = 0.1,
    t_max: Annotated[float, typer.Option("--t-max", help="End time.")] = 20.0,
    times: Annotated[str, typer.Option("--times", help="Comma-separated times to print.")] = "1,5,20",
) -> None:
    """SimSiam's toy dynamics l = ½(φθ − θ)²: stop-gradient, full gradient and second term only (scipy solve_ivp,
    RK45, rtol 1e-10), with each mode's conserved quantity and limit."""
    import numpy as np

    from kexue.analysis.simsiam import MODES, conserved_quantity, plot_simsiam, simsiam_limit, simsiam_toy

    try:
        wanted = [float(x) for x in times.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--times: expected comma-separated numbers, got {times!r}") from None
    if any(not 0 <= w <= t_max for w in wanted):
        raise ConfigError(f"--times: every time must lie in [0, --t-max={t_max}], got {times!r}")
    typer.echo("t\t" + "\t".join(f"{m} (phi, theta)" for m in MODES))
    runs = {m: simsiam_toy(m, phi0, theta0, t_max=t_max, dt=min(1e-2, t_max / 10)) for m in MODES}
    for w in wanted:
        cells = []
        for m in MODES:
            t, phi, theta = runs[m]
            k = int(np.argmin(np.abs(t - w)))
            cells.append(f"({phi[k]:.4f}, {theta[k]:.4f})")
        typer.echo(f"{w:g}\t" + "\t".join(cells))
    for m in MODES:
        t, phi, theta = runs[m]
        c = conserved_quantity(m, phi, theta)
        try:
            lim = simsiam_limit(m, phi0, theta0)
            lim_text = f"limit (phi, theta) = ({lim[0]:.4f}, {lim[1]:.4f})"
        except ConfigError as err:
            lim_text = f"limit: {err}"
        typer.echo(f"{m}: conserved drift {float(np.abs(c - c[0]).max()):.1e}; {lim_text}")
    if plot is not None:
        typer.echo(f"plot: {plot_simsiam(plot, phi0, theta0, t_max)}")


def _split_names(text: Optional[str]) -> list[str] | None:
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    return names or None


@analyze_app.command("leaderboard")
def leaderboard_command(
    table: Annotated[Path, typer.Argument(help="CSV/TSV (';' or tab for decimal commas) or Markdown table: first "
                                               "column model, header = task names, empty or '-' = missing.")],
    intersection: Annotated[bool, typer.Option("--intersection", help="Average every row over the tasks all rows "
                                                                      "share (default: refuse different task "
                                                                      "sets).")] = False,
    tasks: Annotated[Optional[str], typer.Option("--tasks", help="Comma-separated tasks to average over.")] = None,
    drop: Annotated[Optional[str], typer.Option("--drop", help="Comma-separated columns to ignore (e.g. a "
                                                               "published average).")] = None,
    decimal: Annotated[str, typer.Option("--decimal", help="Decimal mark: '.' or ',' (',' also accepts "
                                                           "points).")] = ".",
    nonpositive: Annotated[str, typer.Option("--nonpositive", help="Scores <= 0: refuse, shift (add --shift) or "
                                                                   "clip (at --clip-floor).")] = "refuse",
    shift: Annotated[Optional[float], typer.Option("--shift", help="Constant of --nonpositive shift (default "
                                                                   "1 - lowest score).")] = None,
    clip_floor: Annotated[float, typer.Option("--clip-floor", help="Floor of --nonpositive clip.")] = 1e-6,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the rows as JSON.")] = None,
) -> None:
    """Arithmetic, geometric and harmonic means of a leaderboard over one task set, their ranks, and Kendall τ
    between the three rankings."""
    from kexue.analysis.leaderboard import TaskSetMismatch, leaderboard_means, read_leaderboard

    parsed = read_leaderboard(table, decimal=decimal, drop=_split_names(drop) or ())
    try:
        res = leaderboard_means(parsed.scores, tasks=_split_names(tasks), strict=not intersection,
                                nonpositive=nonpositive, shift=shift, floor=clip_floor)
    except TaskSetMismatch as err:
        raise DataFormatError(table, parsed.lines.get(err.model), str(err)) from None
    width = max(len(r.model) for r in res.rows)
    typer.echo(f"{'model':<{width}}  {'AM':>8} {'GM':>8} {'HM':>8}  rank AM/GM/HM  tasks")
    for r in res.rows:
        extra = f" (dropped {', '.join(r.dropped)})" if r.dropped else ""
        typer.echo(f"{r.model:<{width}}  {r.am:8.3f} {r.gm:8.3f} {r.hm:8.3f}  {r.rank_am:>4}/{r.rank_gm}/{r.rank_hm}"
                   f"       {len(r.tasks)}{extra}")
    typer.echo(f"tasks used: {', '.join(res.rows[0].tasks)}")
    for note in res.notes:
        typer.echo(f"note: {note}")
    tau = res.rank_agreement()
    typer.echo("Kendall tau: " + ", ".join(f"{a.upper()}-{b.upper()} {v:.3f}" for (a, b), v in tau.items()))
    if json_out is not None:
        rows = [{"model": r.model, "am": r.am, "gm": r.gm, "hm": r.hm, "rank_am": r.rank_am, "rank_gm": r.rank_gm,
                 "rank_hm": r.rank_hm, "tasks": list(r.tasks), "dropped": list(r.dropped)} for r in res.rows]
        json_out.write_text(json.dumps({"rows": rows, "kendall_tau": {f"{a}-{b}": v for (a, b), v in tau.items()},
                                        "notes": res.notes}, indent=2) + "\n", encoding="utf-8")


@analyze_app.command("gradient-penalty")
def gradient_penalty_command(
    model: Annotated[Path, typer.Option("--model", "-m", help="A `kexue train classify` run folder (its "
                                                              "checkpoints/ and best/).")],
    data: Annotated[str, typer.Option("--data", "-d", help="sst2, sentiment_zh, afqmc, or a path.")] = "sst2",
    split: Annotated[str, typer.Option("--split", help="Split to draw the examples from.")] = "dev",
    examples: Annotated[int, typer.Option("--examples", help="Examples per checkpoint (per-example "
                                                             "gradients).")] = 32,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="PNG of the norms and ratio (default "
                                                                "RUN/gradient_penalty.png).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Rows as JSON (default "
                                                                    "RUN/gradient_penalty.json).")] = None,
) -> None:
    """Per-example ‖∇ₓ l‖ (word-embedding outputs) and ‖∇_θ l‖ (all parameters) over a classifier's checkpoints:
    does their ratio stay roughly constant during training, as the article argues?"""
    import numpy as np
    import torch

    from kexue.analysis.gradient_ratio import example_gradient_norms, plot_gradient_ratio, summarize
    from kexue.data.collate import pad_batch
    from kexue.data.readers.classification import load_classification
    from kexue.tasks.classification import compute_loss, make_features
    from kexue.tasks.classification_model import load_classifier
    from kexue.train.checkpointing import list_checkpoints, load_checkpoint

    if examples < 1:
        raise ConfigError(f"--examples: expected a positive count, got {examples}")
    checkpoints = list_checkpoints(model / "checkpoints")
    if not checkpoints:
        raise ConfigError(f"--model: {model} has no checkpoints/step-* (train with --save-every N "
                          "--keep-checkpoints K to keep several)")
    base = next((model / d for d in ("best", "last") if (model / d / "kexue_classifier.json").is_file()), None)
    if base is None:
        raise ConfigError(f"--model: {model} has no best/ or last/ classifier folder")
    clf = load_classifier(base).eval()
    items = load_classification(data, split)[:examples]
    feats = make_features(clf, items)
    batches = []
    for f in feats:
        b = pad_batch([{k: f[k] for k in ("input_ids", "token_type_ids", "attention_mask")}],
                      pad_token_id=clf.tokenizer.pad_token_id)
        b["label"] = torch.tensor([f["label"]])
        batches.append(b)
    rows = []
    for step, folder in checkpoints:
        state = load_checkpoint(folder)["model"]
        clf.load_state_dict(state)
        clf.eval()
        inp, par, loss = example_gradient_norms(clf, compute_loss, batches)
        row = summarize(step, inp, par, loss)
        rows.append(row)
        typer.echo(f"step {step:>6}: loss {row.loss:.4f}  |grad_x| {row.input_norm:.4g}  |grad_theta| "
                   f"{row.param_norm:.4g}  ratio {row.ratio:.4g} ± {row.ratio_std:.2g}")
    ratios = np.array([r.ratio for r in rows])
    spread = float(ratios.std() / ratios.mean()) if len(rows) > 1 else 0.0
    typer.echo(f"ratio over {len(rows)} checkpoints: min {ratios.min():.4g}, max {ratios.max():.4g}, "
               f"coefficient of variation {spread:.3f}")
    plot = plot or model / "gradient_penalty.png"
    json_out = json_out or model / "gradient_penalty.json"
    plot_gradient_ratio(rows, plot, title=f"{model.name}: {data} {split}, {len(batches)} examples per checkpoint")
    json_out.write_text(json.dumps({"data": data, "split": split, "examples": len(batches),
                                    "rows": [r.as_dict() for r in rows], "ratio_cv": spread}, indent=2) + "\n",
                        encoding="utf-8")
    typer.echo(f"plot: {plot}\njson: {json_out}")


@analyze_app.command("unargmaxable")
def unargmaxable_command(
    model: Annotated[str, typer.Option("--model", "-m", help="Checkpoint folder, run folder or alias (kexue's "
                                                             "BERT / RoFormer families).")],
    head: Annotated[str, typer.Option("--head", help="mlm (the tied decoder over the vocabulary) or nsp.")] = "mlm",
    method: Annotated[str, typer.Option("--method", help="lp (exact, HiGHS) or frank_wolfe (approximate, no "
                                                         "bias).")] = "lp",
    max_lp: Annotated[Optional[int], typer.Option("--max-lp", help="Decide at most N classes the pre-filter "
                                                                   "leaves (default all).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the result as JSON here.")] = None,
) -> None:
    """Classes of the output layer that no input makes the argmax (https://kexue.fm/archives/9046): a fast
    pre-filter certifies most classes, an exact LP (scipy HiGHS) decides the rest."""
    import time

    from kexue.analysis.unargmaxable import METHODS, certified_argmaxable, find_unargmaxable, output_layer
    from kexue.hub import resolve_model_path
    from kexue.models import Transformer

    if head not in ("mlm", "nsp"):
        raise ConfigError(f"--head: expected mlm or nsp, got {head!r}")
    if method not in METHODS:
        raise ConfigError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")
    if max_lp is not None and max_lp < 0:
        raise ConfigError(f"--max-lp: expected a non-negative integer, got {max_lp}")
    folder = resolve_model_path(model)
    W, b = output_layer(Transformer.from_pretrained(folder), head)
    if method == "frank_wolfe":
        b = None
        typer.echo("frank_wolfe: the bias is ignored (the large-input limit of the article)")
    start = time.perf_counter()
    certified = int(certified_argmaxable(W, b).sum())
    found, undecided = find_unargmaxable(W, b, method=method, max_lp=max_lp)
    seconds = time.perf_counter() - start
    names = [""] * len(found)
    if head == "mlm" and any((folder / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
        from kexue.data.tokenization import Tokenizer

        names = Tokenizer.from_pretrained(folder).convert_ids_to_tokens(found)
    typer.echo(f"{folder} {head} head: {W.shape[0]} classes in {W.shape[1]} dimensions, bias "
               f"{'yes' if b is not None else 'no'}; pre-filter certified {certified}, {method} decided "
               f"{W.shape[0] - certified - len(undecided)}, undecided {len(undecided)} ({seconds:.1f} s)")
    typer.echo(f"unargmaxable: {len(found)}" + (": " + ", ".join(f"{k} {n}".strip() for k, n in zip(found, names))
                                                  if found else ""))
    if json_out is not None:
        json_out.write_text(json.dumps({"model": str(folder), "head": head, "method": method, "classes": W.shape[0],
                                        "dim": W.shape[1], "certified": certified, "unargmaxable": found,
                                        "tokens": names, "undecided": undecided, "seconds": seconds}, indent=2,
                                       ensure_ascii=False) + "\n", encoding="utf-8")
