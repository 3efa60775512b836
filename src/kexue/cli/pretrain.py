"""Growth and pretraining commands: ``widen`` (lossless widening, https://kexue.fm/archives/8444) and
``pretrain-corpus`` (the decontaminated Chinese pretraining corpus)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Optional

import typer

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
) -> None:
    """Gather kexue's Chinese pretraining corpus from $KEXUE_DATA: raw text, unlabeled and training splits only,
    with every sentence of every dev/test split removed, deduplicated; writes FILE and FILE.manifest.json."""
    from kexue.data.corpus import build_corpus
    from kexue.data.registry import data_root as resolve_root

    if limit is not None and limit < 1:
        raise ConfigError(f"--limit: expected a positive integer, got {limit}")
    report = build_corpus(resolve_root(data_root), output, limit=limit, min_chars=min_chars, log=typer.echo)
    typer.echo(f"wrote {output}: {report.sentences} sentences, {report.characters} characters "
               f"(manifest {output.name}.manifest.json)")
