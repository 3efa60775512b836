"""Growth and pretraining commands: ``widen`` (lossless widening, https://kexue.fm/archives/8444) and
``pretrain-corpus`` (the decontaminated Chinese pretraining corpus)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Optional

import typer

from kexue.cli import options as O
from kexue.cli.app import app
from kexue.errors import ConfigError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


@app.command("widen")
def widen_command(
    model: Annotated[str, typer.Option("--model", "-m", help="Checkpoint folder or alias (BERT, RoFormer, "
                                                               "RoFormerV2).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the widened checkpoint to.")],
    factor: Annotated[int, typer.Option(help="Width multiplier k (hidden, FFN sizes ×k).")] = 2,
    mode: Annotated[str, typer.Option(help="head_size (the article's: head size ×k, exact without RoPE) or heads "
                                           "(heads ×k, exact with RoPE too).")] = "head_size",
) -> None:
    """Widen a trained Transformer k× without changing its function (hidden states become rep(x)/√k).

    Writes a Hugging Face folder (config.json + model.safetensors, plus the source's tokenizer files) that
    ``Transformer.from_pretrained`` and every ``--model`` option load.
    """
    from kexue.hub import resolve_model_path
    from kexue.models import Transformer
    from kexue.models.widening import widen_transformer

    source = resolve_model_path(model)
    narrow = Transformer.from_pretrained(source)
    wide = widen_transformer(narrow, factor, mode)
    wide.save_pretrained(output)
    copied = []
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, output / name)
            copied.append(name)
    c = narrow.config
    typer.echo(f"widened {source} x{factor} ({mode}): hidden {c.hidden_size} -> {wide.config.hidden_size}, "
               f"heads {c.num_attention_heads} -> {wide.config.num_attention_heads}, head size {c.head_size} -> "
               f"{wide.config.head_size}; wrote {output}" + (f" (tokenizer: {', '.join(copied)})" if copied else ""))


@app.command("pretrain-corpus")
def pretrain_corpus_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Text file to write (one sentence per line, "
                                                               "blank line between documents).")],
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help="Datasets folder (default "
                                                                          "$KEXUE_DATA).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Read at most N records per file (evaluation files are "
                                                      "always read in full).")] = None,
    min_chars: Annotated[int, typer.Option(help="Drop sentences shorter than this (non-space characters).")] = 2,
    research_only: Annotated[bool, typer.Option("--research-only/--no-research-only",
                                                help="Also use the training text of research-only datasets (DuIE, "
                                                     "LCSTS); a model trained on it must not be shipped.")] = False,
) -> None:
    """Gather kexue's Chinese pretraining corpus from $KEXUE_DATA: raw text, unlabeled and training splits only,
    with every sentence of every dev/test split removed, deduplicated; writes FILE and FILE.manifest.json."""
    from kexue.data.corpus import PRETRAIN_SOURCES, RESEARCH_ONLY_SOURCES, build_corpus
    from kexue.data.registry import data_root as resolve_root

    if limit is not None and limit < 1:
        raise ConfigError(f"--limit: expected a positive integer, got {limit}")
    sources = [s for s in PRETRAIN_SOURCES if research_only or s.name not in RESEARCH_ONLY_SOURCES]
    report = build_corpus(resolve_root(data_root), output, sources=sources, limit=limit, min_chars=min_chars,
                          log=typer.echo)
    typer.echo(f"wrote {output}: {report.sentences} sentences, {report.characters} characters "
               f"(manifest {output.name}.manifest.json)")


@app.command("pretrain")
def pretrain_command(
    corpus: Annotated[Path, typer.Option("--corpus", help="Text file: one sentence per line, a blank line between "
                                                           "documents (`kexue pretrain-corpus` writes one).")],
    output: O.Output = Path("runs/pretrain"),
    init_from: Annotated[Optional[str], typer.Option(help="Continue from this checkpoint (e.g. `kexue widen`'s "
                                                          "output); its architecture and tokenizer are kept.")] = None,
    family: Annotated[str, typer.Option(help="roformer_v2 (no biases, RMS norm, RoPE), roformer or bert.")
                      ] = "roformer_v2",
    hidden_size: Annotated[int, typer.Option(help="Hidden size of a new model.")] = 256,
    num_layers: Annotated[int, typer.Option(help="Layers of a new model.")] = 4,
    num_heads: Annotated[int, typer.Option(help="Attention heads of a new model.")] = 4,
    intermediate_size: Annotated[int, typer.Option(help="FFN size of a new model.")] = 1024,
    vocab_size: Annotated[int, typer.Option(help="Character vocabulary built from the corpus.")] = 8000,
    max_length: Annotated[int, typer.Option(help="Tokens per packed example.")] = 128,
    nsp: Annotated[bool, typer.Option("--nsp/--no-nsp", help="Also train a next-sentence head.")] = True,
    alpha_warmup_steps: Annotated[Optional[int], typer.Option(
        help="Updates of RoFormerV2's residual warm-up (alpha 0 -> 1; 0 = off). Default: 500 for a new model, 0 with "
             "--init-from (a trained model runs at alpha = 1; a new warm-up would restart every block at Norm(x)).")
                                  ] = None,
    mlm_probability: Annotated[float, typer.Option(help="Fraction of words masked.")] = 0.15,
    optimizer: Annotated[str, typer.Option(help="adamw, or accum-adamw (accumulation inside Adam's moments, "
                                                "kexue.fm/archives/8634).")] = "adamw",
    accumulation_steps: Annotated[int, typer.Option(help="Micro-batches per update.")] = 1,
    corpus_limit: Annotated[Optional[int], typer.Option(help="Read only the first N documents.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Padded tokens per batch (examples of similar length, at most "
                                                 "--batch-size of them; 0 = exactly --batch-size examples).")
                          ] = 8192,
    epochs: O.Epochs = 1, max_steps: O.MaxSteps = None, batch_size: O.BatchSize = 256, lr: O.LearningRate = 1e-3,
    warmup_ratio: O.WarmupRatio = 0.05, weight_decay: O.WeightDecay = 0.01, max_grad_norm: O.GradClip = 1.0,
    eval_every: O.EvalEvery = 500, seed: O.Seed = 42, precision: O.Precision = "bf16", resume: O.Resume = False,
    progress: O.ProgressBar = True, save_every: O.SaveEvery = O.DEFAULT_SAVE_EVERY,
    keep_checkpoints: O.KeepCheckpoints = 1, overwrite: O.Overwrite = False,
) -> None:
    """Masked-LM (+ next-sentence) pretraining with whole-word masking: RoFormerV2 by default
    (https://kexue.fm/archives/8998); writes a Hugging Face checkpoint with its tokenizer to OUTPUT/best."""
    from kexue.data.masking import MaskingConfig
    from kexue.tasks.pretrain_recipe import PretrainConfig, train_pretrain

    if batch_size < 2 and nsp:
        raise ConfigError(f"--batch-size: expected at least 2, got {batch_size}")
    if alpha_warmup_steps is None:
        alpha_warmup_steps = 0 if init_from else 500
    elif init_from and alpha_warmup_steps > 0:
        raise ConfigError(f"--alpha-warmup-steps {alpha_warmup_steps}: must be 0 with --init-from (the loaded model "
                          "is trained at alpha = 1; a warm-up would restart every block at Norm(x))")
    cfg = PretrainConfig(corpus=corpus, init_from=init_from, family=family, hidden_size=hidden_size,
                         num_layers=num_layers, num_heads=num_heads, intermediate_size=intermediate_size,
                         vocab_size=vocab_size, max_length=max_length, nsp=nsp,
                         alpha_warmup_steps=alpha_warmup_steps, masking=MaskingConfig(word_probability=mlm_probability),
                         optimizer=optimizer, accumulation_steps=accumulation_steps, corpus_limit=corpus_limit,
                         max_tokens=max_tokens or None)
    tcfg = O.trainer_config(output, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr,
                            warmup_ratio=warmup_ratio, weight_decay=weight_decay, max_grad_norm=max_grad_norm,
                            eval_every=eval_every, seed=seed, precision=precision, resume=resume, progress=progress,
                            save_every=save_every, keep_checkpoints=keep_checkpoints, overwrite=overwrite,
                            metric_for_best="mlm_loss")
    results = train_pretrain(cfg, tcfg, log=typer.echo)
    if results:
        best = results["best"] or {}
        typer.echo(f"held-out MLM loss {best.get('mlm_loss', float('nan')):.4f}, accuracy "
                   f"{best.get('mlm_accuracy', float('nan')):.4f}; {results['tokens_seen']} tokens in "
                   f"{results['train_seconds']:.0f} s; best model: {results['best_dir']}")
