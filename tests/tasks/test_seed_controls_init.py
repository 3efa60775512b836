"""--seed decides a recipe's random initialisation (task head, scratch encoder), not whatever state the global RNG
happened to be in when the command started."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

import kexue.cli.classify  # noqa: F401  (registers the commands)
import kexue.cli.extraction  # noqa: F401
from kexue.cli import main


def _ner(out, model_dir, seed: int, global_seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(global_seed)  # a different global RNG state before the command
    torch.randn(7)
    main(["train", "ner", "--model", str(model_dir), "--data", "conll2003", "--head", "global_pointer",
          "--train-limit", "16", "--eval-limit", "8", "--batch-size", "8", "--max-steps", "1", "--lr", "1e-9",
          "--head-lr", "1e-9", "--max-length", "32", "--seed", str(seed), "--output", str(out), "--no-progress"])
    return load_file(str(out / "best" / "extraction_head.safetensors"))


def test_ner_head_initialisation_follows_seed_not_the_global_rng(tmp_path, tiny_bert_dir, kexue_data):
    a = _ner(tmp_path / "a", tiny_bert_dir, seed=5, global_seed=0)
    b = _ner(tmp_path / "b", tiny_bert_dir, seed=5, global_seed=1)
    c = _ner(tmp_path / "c", tiny_bert_dir, seed=6, global_seed=0)
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)          # same --seed: same head
    assert any(not torch.equal(a[k], c[k]) for k in a)      # other --seed: another head
