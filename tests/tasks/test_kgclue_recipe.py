"""KgCLUE end to end through the CLI: train kgclue a few steps, eval kgclue on a handful of questions; the
(S, P, M) target layout; the knowledge base and trie built from the answers."""

from __future__ import annotations

import dataclasses
import json

import pytest

import kexue.cli.seq2seq  # noqa: F401  (registers the commands)
from kexue.cli import main
from kexue.data.readers.seq2seq import load_kgclue
from kexue.data.tokenization import Tokenizer
from kexue.errors import ConfigError
from kexue.tasks.kgclue import build_trie, encode_examples, kgclue_config, key_ids

TINY = ["--scratch-hidden", "32", "--scratch-layers", "1", "--scratch-heads", "2", "--no-progress"]


@pytest.fixture(scope="module")
def mini_folder(tmp_path_factory, kexue_data):
    """A KgCLUE-format folder whose dev and test are 6 training questions, and train the same 6 five times over (so
    a model learns them, and an epoch is several steps: the trainer plots at every epoch end)."""
    lines = (kexue_data / "kgclue" / "train.json").read_text(encoding="utf-8").splitlines()[:6]
    folder = tmp_path_factory.mktemp("kg")
    for name, rows in (("train.json", lines * 5), ("dev.json", lines), ("test_public.json", lines)):
        (folder / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mini_folder):
    """One `train kgclue` run on the six questions (shared by the tests below)."""
    out = tmp_path_factory.mktemp("kgrun") / "run"
    main(["train", "kgclue", "--data", str(mini_folder), "--output", str(out), "--max-steps", "60", "--batch-size",
          "6", "--lr", "3e-3", "--eval-every", "1000", "--save-every", "1000", *TINY])
    return out


def test_target_layout_and_trie(kexue_data):
    examples = load_kgclue("kgclue", "train")[:3]
    tok = Tokenizer.train_new([t for e in examples for t in (e.question, e.subject, e.predicate, e.mention, e.obj)])
    cfg = kgclue_config()
    enc = encode_examples(tok, examples[:1], cfg)[0]
    ids, sep = enc["input_ids"], tok.sep_token_id
    e = examples[0]  # 守望星光（韩玉玲、刘东考演唱歌曲） ||| 出品公司 ||| 韩玉玲原创音乐
    pieces = [e.question, e.subject, e.predicate, e.mention]
    expected = [tok.cls_token_id]
    for text in pieces:
        expected += tok(text)["input_ids"][0][1:-1] + [sep]
    assert ids == expected
    assert enc["token_type_ids"] == [0] * (len(tok(e.question)["input_ids"][0])) + [1] * (len(ids) - len(
        tok(e.question)["input_ids"][0]))
    trie = build_trie(tok, examples + examples[:1])  # a repeated triple is one key
    assert len(trie) == 3
    for key, ex in zip(key_ids(tok, examples), examples):
        assert trie.get(key) == ex.obj
        assert key.count(sep) == 2
    # two objects of one key: tab-joined, the first is the answer
    twin = dataclasses.replace(examples[0], obj="另一个")
    assert build_trie(tok, [examples[0], twin]).get(key_ids(tok, examples[:1])[0]) == f"{examples[0].obj}\t另一个"


def test_train_then_eval_end_to_end(tmp_path, mini_folder, trained, capsys):
    results = json.loads((trained / "results.json").read_text())
    assert "train + dev + test_public" in results["knowledge_base"]
    assert results["dev"]["token_accuracy"] > 0.5  # the six questions are being learned (chance: ~1/500)
    capsys.readouterr()
    preds = tmp_path / "preds.jsonl"
    main(["eval", "kgclue", "--model", str(trained), "--data", str(mini_folder), "--beam", "2", "--limit", "6",
          "--lookahead", "--predictions", str(preds)])
    report = json.loads(capsys.readouterr().out)
    assert report["questions"] == 6 and report["beam"] == 2 and report["lookahead"] is True
    assert 0.0 <= report["em"] <= report["f1"] <= 1.0
    assert report["em"] >= 0.5
    rows = [json.loads(line) for line in preds.read_text(encoding="utf-8").splitlines()]
    objects = {e.obj for e in load_kgclue(mini_folder, "dev")}
    assert len(rows) == 6 and all(r["answer"] in objects for r in rows)  # every answer is a knowledge-base object
    em = sum(r["answer"] == r["gold"] for r in rows) / 6
    assert em == pytest.approx(report["em"])


def test_eval_on_real_dev(trained, kexue_data, capsys):
    capsys.readouterr()
    main(["eval", "kgclue", "--model", str(trained), "--data", "kgclue", "--limit", "3", "--beam", "1"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["questions"] == 3 and report["split"] == "dev"
    assert 0.0 <= report["em"] <= report["f1"] <= 1.0
    assert "22000 distinct triples" in captured.err  # the knowledge base of the real answers, said in the log


def _fails(args, capsys, match):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and match in err and "Traceback" not in err


def test_bad_options_create_nothing(tmp_path, mini_folder, capsys):
    out = tmp_path / "never"
    _fails(["train", "kgclue", "--data", str(mini_folder), "--output", str(out), "--scratch-hidden", "30",
            "--scratch-heads", "4"], capsys, "--scratch-heads")
    _fails(["train", "kgclue", "--data", "lcsts_clge", "--output", str(out)], capsys, "not a KgCLUE dataset")
    _fails(["train", "kgclue", "--data", str(mini_folder), "--output", str(out), "--loss", "sparse"], capsys,
           "--loss")
    _fails(["eval", "kgclue", "--model", str(tmp_path), "--beam", "0"], capsys, "--beam")
    _fails(["eval", "kgclue", "--model", str(tmp_path), "--split", "train"], capsys, "--split")
    assert not out.exists()
