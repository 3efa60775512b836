"""Growth and pretraining commands: ``widen`` (lossless widening, https://kexue.fm/archives/8444)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from kexue.cli.app import app

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
