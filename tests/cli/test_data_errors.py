"""Bad data through the real CLI: a typed one-line error naming the flag or file:line, a non-zero exit, nothing on
disk where the command refused; and the explicit options (--split-ratio, --dev, --num-labels, --score-range,
--lenient-bio) that make the same data work. Tiny random models, data files written by each test."""

from __future__ import annotations

import importlib
import json
import random

import pytest

from kexue.cli import main

# kexue's typed errors exit with cli/app.py's EXIT_ERROR (1) once it defines it; before, with 2.
TYPED_ERROR_EXIT = getattr(importlib.import_module("kexue.cli.app"), "EXIT_ERROR", 2)

WORDS = ("a man plays the flute . a woman is cutting onions . the dog runs in the park . kids play football on "
         "the grass . a cat sleeps on the sofa . two people are walking along the beach . someone is reading a "
         "book . the sun sets over the sea").split()


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 7)))


def _pairs(n: int, scores, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"{_sentence(rng)}\t{_sentence(rng)}\t{scores(i)}" for i in range(n)]


def _write(path, lines) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process: ``(exit code, stdout, stderr)``; an uncaught exception fails the test."""
    capsys.readouterr()
    try:
        main(list(argv))
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def _refused(capsys, out_dir, *argv: str) -> str:
    """Run a command that must refuse: typed-error exit, one ``error:`` line, no run folder written."""
    code, _, err = _run(capsys, *argv, "--output", str(out_dir))
    assert code == TYPED_ERROR_EXIT, err
    assert err.startswith("error: ")
    assert not out_dir.exists()
    return err


STS_FAST = ("--batch-size", "8", "--epochs", "1", "--lr", "1e-3", "--max-length", "16", "--no-progress")


# ---------------------------------------------------------------- splits: one file is never dev and test


def test_train_sts_single_file_is_refused_naming_the_flags(tmp_path, tiny_bert_dir, capsys):
    data = tmp_path / "pairs.tsv"
    _write(data, _pairs(20, lambda i: i % 6))
    err = _refused(capsys, tmp_path / "run", "train", "sts", "--model", str(tiny_bert_dir), "--data", str(data),
                   *STS_FAST)
    assert f"--data {data} is a single file" in err and "--dev FILE" in err and "--split-ratio" in err


def test_train_sts_split_ratio_cuts_disjoint_seeded_dev_and_test(tmp_path, tiny_bert_dir, capsys):
    data = tmp_path / "pairs.tsv"
    _write(data, _pairs(40, lambda i: i % 6))  # every score 0..5 occurs several times: the range [0, 5] is clear
    out = tmp_path / "run"
    code, stdout, err = _run(capsys, "train", "sts", "--model", str(tiny_bert_dir), "--data", str(data),
                             "--split-ratio", "0.25", "--seed", "3", "--output", str(out), *STS_FAST)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    # 40 pairs: 10 dev, 10 test (round(0.25 * 40)), 20 train; all three from the file, said so with the seed
    assert {s: v["pairs"] for s, v in results["splits"].items()} == {"train": 20, "dev": 10, "test": 10}
    assert all("--split-ratio 0.25 cut, seed 3" in v["source"] for v in results["splits"].values())
    assert results["score_range"] == {"low": 0.0, "high": 5.0, "source": "inferred"}
    config = json.loads((out / "config.json").read_text())
    assert config["sts"]["split_ratio"] == 0.25 and config["trainer"]["seed"] == 3
    assert "dev and test cut from the file by --split-ratio 0.25, seed 3" in stdout
    assert set(results["after"]) == {"dev", "test"}


def test_train_sts_with_dev_file_reports_no_test(tmp_path, tiny_bert_dir, capsys):
    data, dev = tmp_path / "pairs.tsv", tmp_path / "dev.tsv"
    _write(data, _pairs(24, lambda i: i % 2))
    _write(dev, _pairs(8, lambda i: (i + 1) % 2, seed=1))
    out = tmp_path / "run"
    code, stdout, err = _run(capsys, "train", "sts", "--model", str(tiny_bert_dir), "--data", str(data), "--dev",
                             str(dev), "--output", str(out), *STS_FAST)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert set(results["after"]) == {"dev"}  # no test split: none is made up from the training file
    assert results["splits"]["dev"] == {"source": str(dev), "pairs": 8}
    assert "(test: no labelled split here, not evaluated)" in stdout


def test_train_sts_missing_dev_file_names_the_flag(tmp_path, tiny_bert_dir, capsys):
    data = tmp_path / "pairs.tsv"
    _write(data, _pairs(20, lambda i: i % 2))
    err = _refused(capsys, tmp_path / "run", "train", "sts", "--model", str(tiny_bert_dir), "--data", str(data),
                   "--dev", str(tmp_path / "nope.tsv"), *STS_FAST)
    assert f"--dev {tmp_path / 'nope.tsv'}: no such file" in err


def test_eval_sts_single_file_is_scored_once_under_its_path(tmp_path, tiny_bert_dir, capsys):
    data = tmp_path / "pairs.tsv"
    _write(data, _pairs(16, lambda i: i % 6))
    code, stdout, err = _run(capsys, "eval", "sts", "--model", str(tiny_bert_dir), "--data", str(data))
    assert code == 0, err
    report = json.loads(stdout[stdout.index("{"):])
    assert list(report) == [str(data)] and "spearman" in report[str(data)]
    assert " dev " not in stdout and " test " not in stdout and "the whole file" in stdout


# ---------------------------------------------------------------- labels checked against the task


def test_sts_score_outside_declared_range_names_file_line(tmp_path, tiny_bert_dir, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    scores = [0, 3, 5, 7, 2, 4]
    _write(folder / "train.tsv", _pairs(6, lambda i: scores[i]))
    _write(folder / "dev.tsv", _pairs(4, lambda i: i))
    err = _refused(capsys, tmp_path / "run", "train", "sts", "--model", str(tiny_bert_dir), "--data", str(folder),
                   "--score-range", "0,5", *STS_FAST)
    assert f"{folder / 'train.tsv'}:4: score 7: outside the score range [0, 5] (declared)" in err


def test_sts_mse_range_is_not_taken_from_a_lone_outlier(tmp_path, tiny_bert_dir, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    scores = [0, 1, 2, 3, 4, 5, 50, 0, 1, 2, 3, 4, 5]  # line 7: a typo for 5.0
    _write(folder / "train.tsv", _pairs(len(scores), lambda i: scores[i]))
    _write(folder / "dev.tsv", _pairs(4, lambda i: i))
    err = _refused(capsys, tmp_path / "run", "train", "sts", "--model", str(tiny_bert_dir), "--data", str(folder),
                   "--loss", "mse", *STS_FAST)
    assert f"{folder / 'train.tsv'}:7: the highest score 50 occurs only on this line" in err
    assert "--score-range" in err


def test_sts_dev_score_outside_binary_train_names_dev_line(tmp_path, tiny_bert_dir, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    _write(folder / "train.tsv", _pairs(8, lambda i: i % 2))
    _write(folder / "dev.tsv", _pairs(4, lambda i: [0, 1, 3, 0][i]))
    err = _refused(capsys, tmp_path / "run", "train", "sts", "--model", str(tiny_bert_dir), "--data", str(folder),
                   *STS_FAST)
    assert f"{folder / 'dev.tsv'}:3: score 3: outside the score range 0/1 (inferred from train)" in err


def _texts(n: int, labels, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"{_sentence(rng)}\t{labels(i)}" for i in range(n)]


CLS_FAST = ("--batch-size", "8", "--epochs", "1", "--lr", "1e-3", "--max-length", "16", "--no-progress")


def test_classify_typo_label_in_binary_file_is_refused(tmp_path, tiny_bert_dir, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    labels = [0, 1, 1, 0, 7, 1, 0, 1]
    _write(folder / "train.tsv", _texts(8, lambda i: labels[i]))
    _write(folder / "dev.tsv", _texts(4, lambda i: i % 2, seed=1))
    err = _refused(capsys, tmp_path / "run", "train", "classify", "--model", str(tiny_bert_dir), "--data",
                   str(folder), *CLS_FAST)
    assert f"{folder / 'train.tsv'}:5: label 7: the data is read as binary (0/1)" in err
    assert "--num-labels 8" in err and "0: 3, 1: 4, 7: 1" in err


def test_classify_declared_classes_build_that_many_outputs(tmp_path, tiny_bert_dir, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    _write(folder / "train.tsv", _texts(12, lambda i: i % 3))
    _write(folder / "dev.tsv", _texts(6, lambda i: i % 3, seed=1))
    out = tmp_path / "run"
    code, _, err = _run(capsys, "train", "classify", "--model", str(tiny_bert_dir), "--data", str(folder),
                        "--num-labels", "3", "--output", str(out), *CLS_FAST)
    assert code == 0, err
    assert json.loads((out / "results.json").read_text())["num_labels"] == 3
    assert json.loads((out / "best" / "kexue_classifier.json").read_text())["num_labels"] == 3
    # a dev label beyond the declared classes names its line
    _write(folder / "dev.tsv", _texts(6, lambda i: [0, 1, 2, 2, 3, 0][i], seed=1))
    err = _refused(capsys, tmp_path / "run2", "train", "classify", "--model", str(tiny_bert_dir), "--data",
                   str(folder), "--num-labels", "3", *CLS_FAST)
    assert f"{folder / 'dev.tsv'}:5: label 3: outside the 3 classes declared by --num-labels (0..2)" in err


def test_classify_single_file_needs_dev_or_split_ratio(tmp_path, tiny_bert_dir, capsys):
    data = tmp_path / "texts.tsv"
    _write(data, _texts(12, lambda i: i % 2))
    err = _refused(capsys, tmp_path / "run", "train", "classify", "--model", str(tiny_bert_dir), "--data", str(data),
                   *CLS_FAST)
    assert "is a single file" in err and "--split-ratio" in err
    err = _refused(capsys, tmp_path / "run", "train", "classify", "--model", str(tiny_bert_dir), "--data", "sst2",
                   "--split-ratio", "0.1", *CLS_FAST)
    assert "--split-ratio: --data sst2 already has its own dev/test splits" in err


# ---------------------------------------------------------------- invalid UTF-8 and BIO through the commands


def test_invalid_utf8_in_pairs_file_names_file_line(tmp_path, tiny_bert_dir, capsys):
    data = tmp_path / "pairs.tsv"
    data.write_bytes(b"a b\tc d\t1\nx y\tz \xff\t0\n")
    err = _refused(capsys, tmp_path / "run", "train", "sts", "--model", str(tiny_bert_dir), "--data", str(data),
                   "--split-ratio", "0.1", *STS_FAST)
    assert err.startswith(f"error: {data}:2: expected UTF-8 text")


def test_invalid_utf8_in_relation_file_names_file_line(tmp_path, capsys):
    folder = tmp_path / "re"
    folder.mkdir()
    (folder / "schema.json").write_text('{"predicate": "歌手", "subject_type": "歌曲", "object_type": "人物"}\n',
                                        encoding="utf-8")
    good = json.dumps({"text": "稻香的歌手是周杰伦", "spo_list": [{"subject": "稻香", "predicate": "歌手",
                                                          "object": {"@value": "周杰伦"}}]}, ensure_ascii=False)
    (folder / "train.json").write_bytes((good + "\n" + good + "\n").encode() + b'{"text": "\xe4\xb8"}\n')
    err = _refused(capsys, tmp_path / "run", "train", "relation", "--model", "scratch", "--data", str(folder))
    assert err.startswith(f"error: {folder / 'train.json'}:3: expected UTF-8 text")


BIO = ("EU B-ORG\nrejects O\nGerman B-MISC\ncall O\n\nPeter B-PER\nBlackburn I-PER\n\nthe O\nBritish I-MISC\n"
       "lamb O\n\nLondon B-LOC\ncalls O\n")  # line 10: I-MISC after O


def test_train_ner_stray_i_tag_refused_then_read_with_lenient_bio(tmp_path, capsys):
    folder = tmp_path / "ner"
    folder.mkdir()
    (folder / "train.txt").write_text(BIO * 3, encoding="utf-8")
    (folder / "dev.txt").write_text(BIO.replace("British I-MISC", "British B-MISC"), encoding="utf-8")
    scratch = ("--model", "scratch", "--scratch-hidden", "16", "--scratch-layers", "1", "--scratch-heads", "2",
               "--head-size", "8", "--batch-size", "8", "--epochs", "1", "--max-length", "16", "--no-progress")
    err = _refused(capsys, tmp_path / "run", "train", "ner", "--data", str(folder), *scratch)
    assert f"{folder / 'train.txt'}:10: 'I-MISC' does not continue an entity" in err and "--lenient-bio" in err
    out = tmp_path / "run"
    code, stdout, err = _run(capsys, "train", "ner", "--data", str(folder), "--lenient-bio", "--output", str(out),
                             *scratch)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["ner"]["lenient_bio"] is True and "MISC" in config["ner"]["types"]


@pytest.mark.parametrize("kind", ["cluener", "bio"])
def test_invalid_utf8_in_ner_files_names_file_line(tmp_path, capsys, kind):
    folder = tmp_path / "ner"
    folder.mkdir()
    if kind == "cluener":
        good = json.dumps({"text": "浙商银行", "label": {"company": {"浙商银行": [[0, 3]]}}}, ensure_ascii=False)
        (folder / "train.json").write_bytes((good + "\n").encode() + b"\xc3\x28\n")
        bad = folder / "train.json"
    else:
        (folder / "train.txt").write_bytes(b"EU B-ORG\n\xe9t\xe9 O\n")
        bad = folder / "train.txt"
    (folder / "dev.txt").write_text("EU B-ORG\n", encoding="utf-8")
    err = _refused(capsys, tmp_path / "run", "train", "ner", "--model", "scratch", "--data", str(folder))
    assert err.startswith(f"error: {bad}:2: expected UTF-8 text")
