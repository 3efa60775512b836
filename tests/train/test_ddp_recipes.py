"""Multi-process training through the recipes: 2 gloo processes of ``kexue train sts`` / ``kexue train ner`` reach
the parameters of the 1-process run over the same global batch.

The losses are called through the (DDP-wrapped) training module — ``PairModel.forward`` /
``ExtractionModel.forward`` — so DDP's forward-time bookkeeping and gradient-sync hooks see every parameter the
loss uses (the CRF's transitions included). The workers get torchrun's environment (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) and are forked from the test process, as in ``test_ddp.py``, so
they do not pay torch's import again; ``torchrun --nproc_per_node 2 -m kexue.cli train ...`` runs the same code.

The model is a tiny random BERT without dropout (each rank would draw its own dropout masks otherwise), the loss
a per-example mean (cosine-MSE for STS, the CRF's mean negative log-likelihood for NER): over equal halves of a
global batch DDP's gradient average then equals the 1-process gradient. (CoSENT couples every pair of a batch, so
its per-rank halves are a different loss; it is not the subject here.)
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

import kexue.cli.extraction  # noqa: F401  (registers the extraction commands)
from kexue.cli import main


@pytest.fixture(scope="module")
def tiny_bert_no_dropout(tmp_path_factory) -> Path:
    """A tiny random BertModel (2 layers, hidden 32, dropout 0) with the all-MiniLM-L6-v2 tokenizer files."""
    from transformers import BertConfig, BertModel

    from kexue.data.tokenization import Tokenizer

    folder = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    tokenizer = Tokenizer.from_pretrained("minilm")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, argv: list[str], port: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        main(argv)
    except SystemExit as stop:  # typer's standalone exit; a non-zero code is a failure
        if stop.code not in (0, None):
            raise
    assert torch.distributed.is_initialized() and torch.distributed.get_world_size() == 2
    torch.distributed.destroy_process_group()


def _run_two_processes(argv: list[str]) -> None:
    # the recipes build their heads before the Trainer seeds (--seed): forked workers inherit this RNG state
    torch.manual_seed(0)
    context = mp.start_processes(_worker, args=(argv, _free_port()), nprocs=2, join=False, start_method="fork")
    deadline = time.monotonic() + 120
    while not context.join(timeout=1):  # raises if a worker failed
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            raise AssertionError("the 2-process run did not finish within 120 s")


def _single(argv: list[str]) -> None:
    torch.manual_seed(0)
    try:
        main(argv)
    except SystemExit as stop:
        assert stop.code in (0, None), stop.code


# Rows of the word embedding matrix whose tokens occur once or twice get gradients that are nearly zero after
# cancellation; the two runs pad their batches to different lengths (a half batch vs the whole), so those gradients
# differ by roundoff, and Adam divides them by sqrt(v) + 1e-8, which turns that roundoff into update differences of
# up to ~3e-6 at lr 1e-3 (measured: 4 rows of 30,522). A missing gradient sync changes updates by O(lr) = 1e-3 per
# step, so 1e-5 on that one tensor still fails such a bug by two orders of magnitude; every other tensor keeps 1e-6.
_ROUNDOFF_AMPLIFIED = {"embeddings.word_embeddings.weight": 1e-5}


def _assert_same_weights(single: Path, ddp: Path, initial: dict[str, torch.Tensor] | None = None) -> None:
    one, two = load_file(single), load_file(ddp)
    assert set(one) == set(two)
    moved = 0
    for name, param in one.items():
        torch.testing.assert_close(two[name], param, rtol=0, atol=_ROUNDOFF_AMPLIFIED.get(name, 1e-6), msg=name)
        if initial is not None and name in initial and (param - initial[name]).abs().max() > 1e-4:
            moved += 1
    if initial is not None:
        assert moved >= len(one) // 2, f"training moved only {moved} of {len(one)} tensors"


def _initial_backbone(folder: Path) -> dict[str, torch.Tensor]:
    return {k.removeprefix("bert."): v for k, v in load_file(folder / "model.safetensors").items()}


def test_train_sts_two_processes_match_one(tmp_path, tiny_bert_no_dropout, kexue_data):
    def argv(out: Path) -> list[str]:
        return ["train", "sts", "--model", str(tiny_bert_no_dropout), "--data", "stsb_en", "--loss", "mse",
                "--train-limit", "48", "--eval-limit", "8", "--batch-size", "16", "--epochs", "2", "--lr", "1e-3",
                "--seed", "3", "--output", str(out), "--no-progress"]

    _single(argv(tmp_path / "single"))
    _run_two_processes(argv(tmp_path / "ddp"))
    _assert_same_weights(tmp_path / "single" / "last" / "model.safetensors",
                         tmp_path / "ddp" / "last" / "model.safetensors", _initial_backbone(tiny_bert_no_dropout))


def test_train_ner_crf_two_processes_match_one(tmp_path, tiny_bert_no_dropout, kexue_data):
    def argv(out: Path) -> list[str]:
        return ["train", "ner", "--model", str(tiny_bert_no_dropout), "--data", "conll2003", "--head", "crf",
                "--crf-lr-multiplier", "10", "--train-limit", "32", "--eval-limit", "8", "--batch-size", "16",
                "--epochs", "2", "--lr", "1e-3", "--max-length", "48", "--seed", "3", "--output", str(out),
                "--no-progress"]

    _single(argv(tmp_path / "single"))
    _run_two_processes(argv(tmp_path / "ddp"))
    _assert_same_weights(tmp_path / "single" / "last" / "model.safetensors",
                         tmp_path / "ddp" / "last" / "model.safetensors", _initial_backbone(tiny_bert_no_dropout))
    # the head, whose CRF transitions enter the loss only through ExtractionModel.forward's task loss
    _assert_same_weights(tmp_path / "single" / "last" / "extraction_head.safetensors",
                         tmp_path / "ddp" / "last" / "extraction_head.safetensors")
