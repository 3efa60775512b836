"""``kexue train simbert`` end to end on a tiny scratch model, then ``similar``, ``search`` and ``similarity`` on the
run; refused options create nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kexue.cli.app import main
from kexue.embeddings import SentenceEncoder

TINY = ["--scratch-hidden", "32", "--scratch-layers", "1", "--scratch-heads", "2"]


def test_train_then_similar_and_search(tmp_path, kexue_data, capsys):
    out = tmp_path / "run"
    main(["train", "simbert", "--model", "scratch", "--data", "simclue_sample", "--eval-data", "stsb_zh",
          "--train-limit", "32", "--eval-limit", "20", "--max-length", "12", "--batch-size", "8",
          "--noise-probability", "0.5", "--lr", "1e-3", "--no-progress", "--output", str(out), *TINY])
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["pairs"] == 32 and results["optimizer_steps"] == 4
    encoder_cfg = json.loads((out / "best" / "kexue_encoder.json").read_text(encoding="utf-8"))
    assert encoder_cfg["pooling"] == "pooler"
    capsys.readouterr()
    main(["similar", "--model", str(out), "怎么开通微信支付", "--num-samples", "6", "--keep", "3",
          "--max-new-tokens", "6", "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert 1 <= len(rows) <= 3 and all(r["text"] != "怎么开通微信支付" for r in rows)
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    corpus = tmp_path / "s.txt"
    corpus.write_text("今天天气好\n怎么开通微信\n花呗还款\n", encoding="utf-8")
    main(["search", "--model", str(out), "--sentences", str(corpus), "--top-k", "2", "微信怎么开通"])
    hit = json.loads(capsys.readouterr().out)
    enc = SentenceEncoder.from_pretrained(out)
    vecs = enc.encode(["微信怎么开通", "今天天气好", "怎么开通微信", "花呗还款"], normalize=True)
    best = ["今天天气好", "怎么开通微信", "花呗还款"][int(np.argmax(vecs[1:] @ vecs[0]))]
    assert hit["results"][0]["text"] == best and len(hit["results"]) == 2


@pytest.mark.parametrize("args, flag", [
    (["--batch-size", "1"], "--batch-size"),
    (["--noise-probability", "1.5"], "--noise-probability"),
    (["--eval-data", "lcqmc"], "--eval-data lcqmc"),
    (["--teacher", "no/such/model"], "--teacher"),
    (["--max-length", "0"], "--max-length"),
    (["--data", "no_such_set"], "--data no_such_set"),
])
def test_refusals_create_nothing(tmp_path, kexue_data, capsys, args, flag):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        main(["train", "simbert", "--model", "scratch", "--output", str(out), *TINY, *args])
    assert exc.value.code == 1
    assert flag in capsys.readouterr().err
    assert not out.exists()
