"""`kexue train seq2seq` end to end on tiny models: a head-less checkpoint gets a tied MLM head (logged), the run
saves a reloadable model, sparse softmax trains, a scratch model learns a copy task, bad options create nothing."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

import kexue.cli.seq2seq  # noqa: F401  (registers the commands)
from kexue.cli import main
from kexue.data.readers.seq2seq import load_seq2seq
from kexue.tasks.seq2seq import Seq2SeqLM

WORDS = "red green blue black white small large happy quiet fast".split()
CHARS = list("春夏秋冬山水风云花月")  # one token each


def _pairs(path, n, seed, reverse=True, vocab=WORDS, length=4):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        src = [vocab[i] for i in torch.randint(0, len(vocab), (length,), generator=g).tolist()]
        tgt = reversed(src) if reverse else src
        rows.append(f"{' '.join(src)}\t{' '.join(tgt)}")  # target: the source (reversed)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_headless_checkpoint_sparse_softmax_and_reload(tmp_path, tiny_bert_dir, capsys):
    train, dev = _pairs(tmp_path / "train.tsv", 24, 0), _pairs(tmp_path / "dev.tsv", 8, 1)
    out = tmp_path / "run"
    main(["train", "seq2seq", "--model", str(tiny_bert_dir), "--data", str(train), "--dev", str(dev), "--output",
          str(out), "--max-steps", "3", "--batch-size", "8", "--loss", "sparse-softmax", "--sparse-k", "10",
          "--include-target", "--max-source-length", "16", "--max-target-length", "16", "--no-progress"])
    log = capsys.readouterr().out
    assert "no MLM head" in log and "tied to the word embeddings" in log
    assert "loss sparse-softmax (k=10, target included)" in log
    results = json.loads((out / "results.json").read_text())
    assert results["optimizer_steps"] == 3 and results["train_pairs"] == 24 and results["dev_pairs"] == 8
    model = Seq2SeqLM.from_pretrained(out, log=lambda m: pytest.fail(f"reload must find the head: {m}"))
    assert model.backbone.mlm_head is not None and model.settings["max_target_length"] == 16
    config = json.loads((out / "config.json").read_text())
    assert config["seq2seq"]["loss"] == "sparse-softmax" and config["seq2seq"]["include_target"] is True


def test_scratch_model_learns_to_copy(tmp_path):
    train = _pairs(tmp_path / "train.tsv", 256, 2, False, CHARS, 3)
    dev = _pairs(tmp_path / "dev.tsv", 16, 3, False, CHARS, 3)
    out = tmp_path / "run"
    main(["train", "seq2seq", "--model", "scratch", "--data", str(train), "--dev", str(dev), "--output", str(out),
          "--epochs", "3", "--batch-size", "16", "--lr", "5e-3", "--scratch-hidden", "64", "--scratch-layers", "2",
          "--scratch-heads", "4", "--max-source-length", "16", "--max-target-length", "16", "--no-progress",
          "--save-every", "1000"])
    accuracy = json.loads((out / "results.json").read_text())["dev"]["token_accuracy"]
    # the best a source-blind model can do on these unseen random sources: the final [SEP], and at each of the 3
    # positions the dev targets' most frequent character (the characters are drawn independently)
    targets = [e.target.split() for e in load_seq2seq(dev, "train")]
    blind = (len(targets) + sum(Counter(t[j] for t in targets).most_common(1)[0][1] for j in range(3))) / (
        4 * len(targets))
    assert blind < 0.5 and accuracy > blind + 0.2, (accuracy, blind)


def test_registered_datasets_and_bad_options(tmp_path, kexue_data, capsys):
    assert len(load_seq2seq("csl_title", "train")) == 1000 and len(load_seq2seq("lcsts_clge", "dev")) == 1000
    out = tmp_path / "never"
    for args, match in ((["--loss", "focal"], "--loss"), (["--loss", "sparse-softmax", "--sparse-k", "0"],
                                                           "--sparse-k"),
                        (["--max-target-length", "0"], "--max-target-length"),
                        (["--data", str(tmp_path / "missing.tsv")], "--data"),
                        (["--data", str(_pairs(tmp_path / "one.tsv", 4, 0))], "--dev"),
                        (["--data", "kgclue"], "train kgclue")):
        with pytest.raises(SystemExit) as exc:
            main(["train", "seq2seq", "--output", str(out), *args])
        err = capsys.readouterr().err
        assert exc.value.code == 1 and err.startswith("error: ") and match in err, (args, err)
    assert not out.exists()
