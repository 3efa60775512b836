"""``--model RUN_FOLDER`` means the run's ``best/`` for every command: the output equals ``--model RUN/best``."""

from __future__ import annotations

import json

import pytest

from kexue.data.tokenization import Tokenizer
from kexue.embeddings import SentenceEncoder
from kexue.models import Transformer

from _cli import run_cli

PAIRS = ("A man is playing a flute.\tA man plays the flute.\t4.8\n"
         "A woman slices an onion.\tA man reads a book.\t0.4\n"
         "Two dogs run on the grass.\tDogs are running outside.\t3.9\n"
         "A cat sleeps.\tThe stock market fell.\t0.0\n")


def _run_folder(tmp_path, save) -> object:
    """A run folder as ``kexue train`` leaves it: config.json (the run's, not a model's), metrics.jsonl, best/."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"trainer": {"output_dir": str(run)}, "task": "sts"}))
    (run / "metrics.jsonl").write_text("")
    save(run / "best")
    return run


@pytest.fixture()
def sts_run(tmp_path, tiny_bert_dir):
    encoder = SentenceEncoder.from_pretrained(tiny_bert_dir, pooling="cls", max_length=24)
    return _run_folder(tmp_path, encoder.save_pretrained)


def _same_output(args_before: list[str], run, args_after: list[str] = (), stdin: bytes = b"") -> None:
    via_run = run_cli([*args_before, str(run), *args_after], stdin=stdin)
    via_best = run_cli([*args_before, str(run / "best"), *args_after], stdin=stdin)
    assert via_run.code == 0 and via_best.code == 0, via_run.stderr + via_best.stderr
    assert via_run.stdout == via_best.stdout and via_run.stdout


def test_encode(sts_run):
    _same_output(["encode", "--model"], sts_run, stdin=b"A man plays the flute.\nA dog.\n")


def test_similarity(sts_run):
    _same_output(["similarity", "a man plays", "a man sings", "--model"], sts_run)


def test_eval_sts(sts_run, tmp_path):
    data = tmp_path / "pairs.tsv"
    data.write_text(PAIRS, encoding="utf-8")
    _same_output(["eval", "sts", "--data", str(data), "--model"], sts_run)


def test_export(sts_run, tmp_path):
    result = run_cli(["export", str(sts_run), str(tmp_path / "exported")])
    assert result.code == 0, result.stderr
    again = SentenceEncoder.from_pretrained(tmp_path / "exported")
    assert again.pooling == "cls" and again.max_length == 24


def test_train_starts_from_the_run_best(sts_run, tmp_path, kexue_data):
    out = tmp_path / "run2"
    result = run_cli(["train", "sts", "--model", str(sts_run), "--data", "stsb_en", "--train-limit", "16",
                      "--eval-limit", "16", "--max-steps", "1", "--batch-size", "8", "--pooling", "cls",
                      "--max-length", "24", "--output", str(out), "--no-progress"])
    assert result.code == 0, result.stderr
    assert (out / "best" / "config.json").is_file() or (out / "last" / "config.json").is_file()


def test_run_folder_without_best_is_one_line(tmp_path, tiny_bert_dir):
    run = _run_folder(tmp_path, lambda path: None)
    SentenceEncoder.from_pretrained(tiny_bert_dir).save_pretrained(run / "last")
    result = run_cli(["similarity", "a", "b", "--model", str(run)])
    assert result.code == 1 and "Traceback" not in result.stderr
    assert "best" in result.stderr and str(run / "last") in result.stderr


def test_predict_classify(tmp_path, tiny_bert_dir):
    from kexue.tasks.classification_model import SequenceClassifier

    backbone = Transformer.from_pretrained(tiny_bert_dir)
    model = SequenceClassifier(backbone, 2, Tokenizer.from_pretrained(tiny_bert_dir), max_length=24)
    run = _run_folder(tmp_path, model.save_pretrained)
    _same_output(["predict", "classify", "--model"], run, stdin=b"good film\nbad film\n")


def test_predict_ner(tmp_path, tiny_bert_dir):
    from kexue.tasks.extraction_common import ExtractionModel
    from kexue.tasks.ner import NerTask

    task = NerTask(("PER", "LOC"), "softmax")
    model = ExtractionModel(Transformer.from_pretrained(tiny_bert_dir), task.build_head(32),
                            Tokenizer.from_pretrained(tiny_bert_dir), task, max_length=24)
    run = _run_folder(tmp_path, model.save_pretrained)
    _same_output(["predict", "ner", "--model"], run, stdin="Peter lives in São Paulo .\n".encode())
