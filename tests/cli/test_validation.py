"""Validation before work starts: batch sizes, --max-length against the model's positions, --extra-eval names;
nothing is written when a command refuses, and no NaN reaches JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kexue.embeddings import SentenceEncoder
from kexue.errors import ConfigError

from _cli import run_cli, snapshot

TINY_POSITIONS = 128  # max_position_embeddings of the tiny_bert_dir fixture (tests/conftest.py)


@pytest.mark.parametrize("value", ["-1", "0"])
@pytest.mark.parametrize("command", [["encode"], ["eval", "sts"], ["predict", "classify"], ["predict", "ner"],
                                     ["predict", "relation"], ["predict", "event"]])
def test_non_positive_batch_size_is_refused(tmp_path, tiny_bert_dir, command, value):
    result = run_cli([*command, "--model", str(tiny_bert_dir), "--batch-size", value], stdin=b"one line\n")
    assert result.code == 2 and result.stdout == b""
    assert "Invalid value for '--batch-size'" in result.stderr and "Traceback" not in result.stderr


def test_encode_batch_size_is_checked_by_the_library(tiny_bert_dir):
    encoder = SentenceEncoder.from_pretrained(tiny_bert_dir)
    for bad in (0, -1):
        with pytest.raises(ConfigError, match="--batch-size"):
            encoder.encode(["a", "b"], batch_size=bad)


def test_encode_max_length_option(tmp_path, tiny_bert_dir):
    texts = b"a b c d e f g h i j k l m n o p\nshort\n"
    short = run_cli(["encode", "--model", str(tiny_bert_dir), "--max-length", "4"], stdin=texts)
    assert short.code == 0, short.stderr
    import io

    got = np.load(io.BytesIO(short.stdout))
    expected = SentenceEncoder.from_pretrained(tiny_bert_dir, max_length=4).encode(["a b c d e f g h i j k l m n o p",
                                                                                  "short"])
    assert np.allclose(got, expected, atol=1e-6)
    # truncation to 4 tokens changes the long sentence's vector, not the short one's ([CLS] short [SEP] = 3)
    full = SentenceEncoder.from_pretrained(tiny_bert_dir).encode(["a b c d e f g h i j k l m n o p", "short"])
    assert not np.allclose(got[0], full[0], atol=1e-4) and np.allclose(got[1], full[1], atol=1e-6)


def test_encode_max_length_above_positions(tmp_path, tiny_bert_dir):
    out = tmp_path / "v.npy"
    result = run_cli(["encode", "--model", str(tiny_bert_dir), "--max-length", "100000", "--output", str(out)],
                     stdin=b"a\n")
    assert result.code == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: --max-length 100000:") and str(TINY_POSITIONS) in result.stderr
    assert not out.exists()


def test_encoder_refuses_max_length_above_positions(tiny_bert_dir):
    with pytest.raises(ConfigError, match=f"--max-length {TINY_POSITIONS + 1}"):
        SentenceEncoder.from_pretrained(tiny_bert_dir, max_length=TINY_POSITIONS + 1)
    assert SentenceEncoder.from_pretrained(tiny_bert_dir, max_length=TINY_POSITIONS).max_length == TINY_POSITIONS


@pytest.mark.parametrize("command", [["train", "sts", "--data", "stsb_en"], ["train", "classify", "--data", "sst2"],
                                     ["train", "ner", "--data", "conll2003"],
                                     ["train", "relation", "--data", "duie2.0_subset"],
                                     ["train", "event", "--data", "duee1.0"]])
def test_train_max_length_above_positions_before_work(tmp_path, tiny_bert_dir, command):
    out = tmp_path / "run"
    result = run_cli([*command, "--model", str(tiny_bert_dir), "--max-length", "100000", "--output", str(out),
                      "--no-progress"])
    assert result.code == 1 and "Traceback" not in result.stderr
    assert "--max-length 100000" in result.stderr and str(TINY_POSITIONS) in result.stderr
    assert not out.exists()


def test_train_refusal_leaves_an_existing_folder_unchanged(tmp_path, tiny_bert_dir):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    before = snapshot(out)
    result = run_cli(["train", "sts", "--model", str(tiny_bert_dir), "--max-length", "100000", "--output", str(out)])
    assert result.code == 1 and snapshot(out) == before


def test_extra_eval_typo_is_refused_before_work(tmp_path, tiny_bert_dir):
    out = tmp_path / "run"
    result = run_cli(["train", "sts", "--model", str(tiny_bert_dir), "--extra-eval", "stsb_zh",
                      "--extra-eval", "stbs_en", "--output", str(out), "--no-progress"])
    assert result.code == 1 and "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert line.startswith("error: --extra-eval stbs_en:") and "stsb_en" in line and "lcqmc" in line
    assert not out.exists()


def test_extra_eval_of_another_task_is_refused(tmp_path, tiny_bert_dir):
    result = run_cli(["train", "sts", "--model", str(tiny_bert_dir), "--extra-eval", "conll2003",
                      "--output", str(tmp_path / "run")])
    assert result.code == 1 and "--extra-eval conll2003" in result.stderr and not (tmp_path / "run").exists()


def test_eval_sts_undefined_spearman_is_null_not_nan(tmp_path, tiny_bert_dir):
    data = tmp_path / "constant.tsv"  # every gold score equal: Spearman is undefined
    data.write_text("a man sings\ta man sings loudly\t3.0\nthe sky\ta cat\t3.0\ndogs bark\tdogs run\t3.0\n",
                    encoding="utf-8")
    result = run_cli(["eval", "sts", "--model", str(tiny_bert_dir), "--data", str(data)])
    assert result.code == 0, result.stderr
    text = result.stdout.decode()
    assert "NaN" not in text[text.index("{"):]
    parsed = json.loads(text[text.index("{"):])
    values = [v for metrics in parsed.values() for v in metrics.values()]
    assert None in values and "written as null" in result.stderr
