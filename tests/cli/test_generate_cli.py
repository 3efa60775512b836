"""``kexue generate``: JSON lines equal to the library's generate(); wrong values give one-line errors, exit 1."""

from __future__ import annotations

import json

import pytest
import torch

from _cli import run_cli
from kexue.data.tokenization import Tokenizer
from kexue.generation import generate
from kexue.models import Transformer, TransformerConfig

SOURCES = ["A man is playing a flute.", "Two dogs run.", "明天下午开会"]


@pytest.fixture(scope="module")
def seq2seq_dir(tmp_path_factory):
    """A tiny random BERT with an MLM head and the MiniLM tokenizer, saved in the Hugging Face layout."""
    folder = tmp_path_factory.mktemp("tiny-seq2seq")
    tokenizer = Tokenizer.from_pretrained("minilm")
    torch.manual_seed(0)
    config = TransformerConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=4, intermediate_size=37, max_position_embeddings=128, mlm=True,
                               hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    Transformer(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_generate_lines_match_the_library(seq2seq_dir):
    result = run_cli(["generate", "--model", str(seq2seq_dir), "--strategy", "beam", "--num-beams", "2",
                      "--num-return-sequences", "2", "--max-new-tokens", "5"], "\n".join(SOURCES).encode())
    assert result.code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [r["source"] for r in rows] == SOURCES
    model = Transformer.from_pretrained(seq2seq_dir)
    tokenizer = Tokenizer.from_pretrained(seq2seq_dir)
    for row in rows:
        ids = torch.tensor([tokenizer([row["source"]])["input_ids"][0]])
        out = generate(model, ids, strategy="beam", num_beams=2, num_return_sequences=2, max_new_tokens=5,
                       end_token_id=tokenizer.sep_token_id)
        assert [g["ids"] for g in row["generations"]] == out.tolist()[0]
        assert [g["finished"] for g in row["generations"]] == out.finished[0].tolist()


@pytest.mark.parametrize("args,flag", [
    (["--strategy", "nucleus"], "--strategy"),
    (["--num-beams", "0"], "--num-beams"),
    (["--num-beams", "3"], "--strategy"),
    (["--max-new-tokens", "0"], "--max-new-tokens"),
    (["--strategy", "sample", "--top-p", "2"], "--top-p"),
    (["--temperature", "0"], "--temperature"),
    (["--batch-size", "0"], "--batch-size"),
    (["--mode", "seq2seq"], "--mode"),
    (["--max-new-tokens", "200"], "max_position_embeddings"),
])
def test_wrong_values_are_one_line_errors(seq2seq_dir, args, flag):
    result = run_cli(["generate", "--model", str(seq2seq_dir), *args], b"a source\n")
    assert result.code == 1 and result.stdout == b""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and flag in lines[0], result.stderr


def test_model_without_mlm_head_is_refused(tiny_bert_dir):
    result = run_cli(["generate", "--model", str(tiny_bert_dir)], b"a source\n")
    assert result.code == 1 and "MLM head" in result.stderr and len(result.stderr.strip().splitlines()) == 1
