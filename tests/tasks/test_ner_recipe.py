"""The NER recipe end to end through the CLI on a tiny model and small real slices; offsets round-trip."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

import kexue.cli.extraction  # noqa: F401  (registers the extraction commands)
from kexue.cli import main
from kexue.data.tokenization import Tokenizer
from kexue.errors import CheckpointError, ConfigError
from kexue.extraction.spans import bio_to_spans
from kexue.metrics.extraction import entity_prf
from kexue.tasks.extraction_common import collate, encode_split, tokenize
from kexue.tasks.extraction_data import load_extraction_splits
from kexue.tasks.ner import NerTask, entity_types, load_ner_model


def _train(tmp_path, *args: str) -> dict:
    out = tmp_path / "run"
    main(["train", "ner", "--train-limit", "48", "--eval-limit", "16", "--batch-size", "16", "--epochs", "1",
          "--lr", "1e-3", "--max-length", "64", "--output", str(out), "--no-progress", *args])
    return json.loads((out / "results.json").read_text())


def test_train_and_predict_english_crf(tmp_path, tiny_bert_dir, kexue_data, monkeypatch, capsys):
    results = _train(tmp_path, "--model", str(tiny_bert_dir), "--data", "conll2003", "--head", "crf",
                     "--crf-lr-multiplier", "100")
    out = tmp_path / "run"
    for name in ("config.json", "metrics.jsonl", "best/model.safetensors", "best/extraction_head.safetensors",
                 "best/kexue_extraction.json", "best/vocab.txt", "last/kexue_extraction.json"):
        assert (out / name).is_file(), name
    meta = json.loads((out / "best/kexue_extraction.json").read_text())
    assert meta["head"] == "crf" and meta["crf_lr_multiplier"] == 100 and meta["types"] == ["LOC", "MISC", "ORG", "PER"]
    assert set(results["dev"]) == {"precision", "recall", "f1"} and results["test"] is not None
    # The CRF stores θ/λ: the saved transitions are the effective ones divided by 100.
    model = load_ner_model(str(out))
    assert torch.allclose(model.head.crf.transitions, model.head.crf.stored_transitions * 100)
    lines = ["EU rejects German call to boycott British lamb .", "Peter Blackburn lives in São Paulo ."]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    main(["predict", "ner", "--model", str(out)])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["text"] for r in records] == lines
    for r in records:
        for e in r["entities"]:
            assert r["text"][e["start"]:e["end"]] == e["text"] and e["type"] in meta["types"]


def test_train_chinese_scratch_global_pointer_and_predict(tmp_path, kexue_data):
    results = _train(tmp_path, "--model", "scratch", "--scratch-hidden", "32", "--scratch-layers", "1",
                     "--scratch-heads", "2", "--head-size", "16", "--data", "cluener2020",
                     "--head", "efficient_global_pointer")
    assert results["test"] is None and 0.0 <= results["dev"]["f1"] <= 100.0
    src = tmp_path / "in.txt"
    src.write_text("浙商银行企业信贷部叶老桂博士\n生生不息CSOL生化狂潮让你填弹狂扫\n", encoding="utf-8")
    dst = tmp_path / "out.jsonl"
    main(["predict", "ner", "--model", str(tmp_path / "run"), "--input", str(src), "--output", str(dst)])
    records = [json.loads(line) for line in dst.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 2
    for r in records:
        for e in r["entities"]:
            assert r["text"][e["start"]:e["end"]] == e["text"]


@pytest.mark.parametrize("data,tokenizer", [("conll2003", "minilm"), ("people_daily_ner", "char")])
@pytest.mark.parametrize("head", ["global_pointer", "crf"])
def test_gold_labels_decode_back_to_gold_text(data, tokenizer, head, kexue_data):
    """Oracle: gold labels turned into scores decode to the gold entities, whose text is the gold text — the
    char <-> token offset mapping is exact for English WordPiece and Chinese characters."""
    examples = load_extraction_splits("ner", data, with_train=False, eval_limit=120).dev
    tok = Tokenizer.from_pretrained("minilm") if tokenizer == "minilm" else \
        Tokenizer.train_new([e.text for e in examples], kind="char", vocab_size=8000)
    task = NerTask(entity_types(examples), head)
    items, dropped = encode_split(task, tok, examples, max_length=256)
    assert dropped == 0
    batch = collate(items, task, tok.pad_token_id, with_labels=True)
    head_module = task.build_head(8)
    if head == "global_pointer":
        outputs = batch["span_labels"] * 20 - 10
    else:  # emissions that make the gold tags the Viterbi path whatever the (small) transitions are
        outputs = torch.nn.functional.one_hot(batch["tags"], 2 * len(task.types) + 1).float() * 20
    preds = task.decode(head_module, outputs, batch, items)
    gold = [task.gold(e) for e in examples]
    assert preds == gold
    for e, p in zip(examples, preds):
        assert sorted(e.text[s:t] for _, s, t in p) == sorted(x.text for x in e.entities)


def test_entity_f1_matches_seqeval_on_bio(kexue_data):
    """The recipe scores (type, char span) sets; on word-aligned CoNLL entities this is seqeval's entity F1."""
    from seqeval.metrics import f1_score

    examples = load_extraction_splits("ner", "conll2003", with_train=False, eval_limit=300).dev
    rng = np.random.default_rng(0)
    y_true = [list(e.tags) for e in examples]
    y_pred = [[t if rng.random() > 0.15 else rng.choice(["O", "B-PER", "I-ORG", "B-LOC"]) for t in tags]
              for tags in y_true]
    starts = []
    for e in examples:
        pos, offs = 0, []
        for tok in e.tokens:
            offs.append((pos, pos + len(tok)))
            pos += len(tok) + 1
        starts.append(offs)
    pred_sets = [{(t, offs[s][0], offs[x][1]) for t, s, x in bio_to_spans(p)} for p, offs in zip(y_pred, starts)]
    gold_sets = [NerTask(("LOC",), "softmax").gold(e) for e in examples]
    ours = entity_prf(pred_sets, gold_sets).f1
    assert ours == pytest.approx(f1_score(y_true, y_pred), abs=1e-12)


def test_bad_options_and_models(tmp_path, tiny_bert_dir, kexue_data):
    with pytest.raises(ConfigError, match="--head"):
        NerTask(("PER",), "pointer")
    with pytest.raises(SystemExit) as err:
        main(["train", "ner", "--model", str(tiny_bert_dir), "--data", "duee1.0", "--output", str(tmp_path / "x"),
              "--no-progress"])
    assert err.value.code == 1  # a kexue error (ConfigError), not a usage error
    with pytest.raises(CheckpointError):
        load_ner_model(str(tiny_bert_dir))
    src = tmp_path / "blank.txt"
    src.write_text("ok line\n\nnext\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["predict", "ner", "--model", str(tiny_bert_dir), "--input", str(src)])


def test_truncated_texts_are_flagged(tiny_bert_dir):
    tok = Tokenizer.from_pretrained(tiny_bert_dir)
    short, long = tokenize(tok, ["a b c", " ".join(["word"] * 50)], max_length=16)
    assert not short.truncated and long.truncated
