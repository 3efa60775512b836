"""``kexue generate``: decode targets for text lines with a UniLM seq2seq (or causal LM) model (kexue.generation)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from kexue.cli.app import app

Strategy = Annotated[str, typer.Option(help="greedy, beam or sample.")]


@app.command("generate")
def generate_command(
    model: Annotated[str, typer.Option("--model", "-m", help="A run folder of train seq2seq (its best/) or a "
                                                             "checkpoint folder with an MLM head and a tokenizer.")],
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="Source lines (default stdin).")] = None,
    mode: Annotated[str, typer.Option(help="unilm ([CLS] source [SEP], target in segment 1) or causal.")] = "unilm",
    strategy: Strategy = "greedy",
    num_beams: Annotated[int, typer.Option(help="Beams per source (--strategy beam).")] = 1,
    max_new_tokens: Annotated[Optional[int], typer.Option(
        help="Most target tokens, end included (default: the model's max_target_length + 1 from seq2seq.json, "
             "else 32).")] = None,
    max_source_length: Annotated[Optional[int], typer.Option(
        help="Source tokens kept (default: seq2seq.json's max_source_length, else 128).")] = None,
    min_ends: Annotated[int, typer.Option(help="Stop at the N-th end token ([SEP]).")] = 1,
    length_penalty: Annotated[float, typer.Option(help="Beam ranking by score / length ** this (0 = sum).")] = 0.0,
    temperature: Annotated[float, typer.Option(help="Divides the logits.")] = 1.0,
    top_k: Annotated[Optional[int], typer.Option(help="Sample from the k most likely tokens.")] = None,
    top_p: Annotated[Optional[float], typer.Option(help="Sample from the smallest set with mass >= p.")] = None,
    num_return_sequences: Annotated[int, typer.Option(help="Outputs per source (samples, or the best beams).")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the sampling draws.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Sources per batch.")] = 16,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Reuse keys/values (same outputs, faster).")] = True,
) -> None:
    """Generate for each source line (UTF-8; blank lines only at the end) one JSON object per line:
    {"source": ..., "generations": [{"text", "ids", "score", "finished"}, ...]}."""
    import torch

    from kexue.cli.inputs import read_text_lines
    from kexue.data.tokenization import Tokenizer
    from kexue.errors import ConfigError
    from kexue.generation.decoding import check_options
    from kexue.generation.texts import generate_texts
    from kexue.hub import resolve_model_path
    from kexue.models import Transformer
    from kexue.tasks.seq2seq import SETTINGS_FILE

    for flag, value in (("--max-new-tokens", max_new_tokens), ("--max-source-length", max_source_length),
                        ("--batch-size", batch_size)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag}: expected an integer >= 1, got {value}")
    check_options(mode=mode, strategy=strategy, num_beams=num_beams, max_new_tokens=max_new_tokens or 1,
                  min_ends=min_ends, temperature=temperature, top_k=top_k, top_p=top_p,
                  num_return_sequences=num_return_sequences)
    folder = resolve_model_path(model)
    lines = read_text_lines(input)
    settings_file = folder / SETTINGS_FILE
    settings = json.loads(settings_file.read_text(encoding="utf-8")) if settings_file.is_file() else {}
    if max_new_tokens is None:
        max_new_tokens = int(settings["max_target_length"]) + 1 if "max_target_length" in settings else 32
    if max_source_length is None:
        max_source_length = int(settings.get("max_source_length", 128))
    backbone = Transformer.from_pretrained(folder)
    if backbone.mlm_head is None:
        raise ConfigError(f"--model {model}: {folder} has no MLM head (cls.predictions.*); generation needs one "
                          f"(train it with `kexue train seq2seq`)")
    tokenizer = Tokenizer.from_pretrained(folder)
    rows = generate_texts(backbone, tokenizer, lines, max_source_length=max_source_length, batch_size=batch_size,
                          mode=mode, strategy=strategy, num_beams=num_beams, max_new_tokens=max_new_tokens,
                          min_ends=min_ends, length_penalty=length_penalty, temperature=temperature, top_k=top_k,
                          top_p=top_p, num_return_sequences=num_return_sequences, use_cache=cache,
                          generator=torch.Generator().manual_seed(seed))
    for source, generations in zip(lines, rows):
        typer.echo(json.dumps({"source": source, "generations": generations}, ensure_ascii=False))
