"""Shared fixtures: the real-data folder, a small torch thread budget, deterministic seeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def kexue_data() -> Path:
    """The folder of real datasets: ``$KEXUE_DATA``, else ``../shared/data`` beside the repository.

    A missing folder is a failure, not a skip: the suite's real-data checks must run.
    """
    root = Path(os.environ.get("KEXUE_DATA", REPO.parent / "shared" / "data"))
    if not root.is_dir():
        pytest.fail(f"real data folder not found: {root} (set KEXUE_DATA)")
    return root


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A tiny random BertModel checkpoint (2 layers, hidden 32) with the all-MiniLM-L6-v2 tokenizer files,
    written by transformers' own ``save_pretrained``."""
    from transformers import BertConfig, BertModel

    from kexue.data.tokenization import Tokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = Tokenizer.from_pretrained("minilm")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
