"""`kexue pretrain --init-from` a widened model: no residual warm-up by default (α stays 1), an explicit warm-up is
a one-line error, and the continued run's held-out loss before any update equals the small model's final one
(lossless widening, heads mode, https://kexue.fm/archives/8444, through the command line end to end)."""

from __future__ import annotations

import json

import pytest

from kexue.cli import main
from kexue.models import Transformer

TINY = ["--no-nsp", "--precision", "fp32", "--no-progress", "--max-length", "32", "--max-tokens", "256",
        "--batch-size", "8", "--eval-every", "100", "--seed", "3"]


@pytest.fixture(scope="module")
def widened(kexue_data, tmp_path_factory):
    """A tiny RoFormerV2 pretrained for 6 updates on 120 zhwiki documents, and its `kexue widen --mode heads`."""
    root = tmp_path_factory.mktemp("growth")
    text = (kexue_data / "zh_raw_sentences" / "zhwiki_bert_sampled.txt").read_text(encoding="utf-8")
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join([b for b in text.split("\n\n") if b.strip()][:120]) + "\n", encoding="utf-8")
    small = root / "small"
    main(["pretrain", "--corpus", str(corpus), "--output", str(small), *TINY, "--hidden-size", "32",
          "--num-layers", "1", "--num-heads", "2", "--intermediate-size", "64", "--vocab-size", "3000",
          "--max-steps", "6", "--alpha-warmup-steps", "3"])
    wide = root / "wide"
    main(["widen", "--model", str(small / "last"), "--factor", "2", "--mode", "heads", "--output", str(wide)])
    return corpus, small, wide


def test_continued_run_starts_from_the_small_models_loss(widened, tmp_path):
    corpus, small, wide = widened
    out = tmp_path / "continued"
    # no --alpha-warmup-steps: the former default (500 updates) would be refused for a 2-update run
    main(["pretrain", "--corpus", str(corpus), "--output", str(out), *TINY, "--init-from", str(wide),
          "--max-steps", "2"])
    before = json.loads((out / "results.json").read_text())["before"]
    final = json.loads((small / "results.json").read_text())["final"]
    assert before["mlm_loss"] == pytest.approx(final["mlm_loss"], abs=1e-5)
    assert before["mlm_accuracy"] == pytest.approx(final["mlm_accuracy"], abs=1e-6)
    config = Transformer.from_pretrained(out / "last").config
    assert (config.hidden_size, config.num_attention_heads, config.intermediate_size) == (64, 4, 128)


def test_explicit_warmup_with_init_from_is_a_one_line_error(widened, tmp_path, capsys):
    corpus, _, wide = widened
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as err:
        main(["pretrain", "--corpus", str(corpus), "--output", str(out), *TINY, "--init-from", str(wide),
              "--max-steps", "20", "--alpha-warmup-steps", "5"])
    message = capsys.readouterr().err
    assert err.value.code == 1, message
    assert "--alpha-warmup-steps" in message and "--init-from" in message
    assert "Traceback" not in message and message.count("\n") == 1
    assert not out.exists()
