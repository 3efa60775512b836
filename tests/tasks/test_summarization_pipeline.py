"""`kexue train summarize` end to end on the CAIL2020 sfzy sample (a format / pipeline check, tiny models) and on
LCSTS pairs (the generator alone); refusals before the run folder exists."""

import json
import os
from pathlib import Path

import pytest
from kexue.cli import main
from kexue.data.tokenization import Tokenizer
from kexue.models import Transformer, TransformerConfig
from kexue.tasks.summarization_data import load_sfzy

DATA = Path(os.environ.get("KEXUE_DATA", "../shared/data"))
TINY = ["--scratch-hidden", "32", "--scratch-layers", "1", "--scratch-heads", "2", "--no-progress", "--lr", "1e-3"]


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("enc")
    docs = load_sfzy(DATA / "cail2020_sfzy_sample")
    tok = Tokenizer.train_new(["".join(d.sentences) for d in docs], vocab_size=3000)
    cfg = TransformerConfig(family="bert", vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
                            num_attention_heads=2, intermediate_size=32, max_position_embeddings=512,
                            pad_token_id=tok.pad_token_id)
    Transformer(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _run(args, capsys):
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_sfzy_pipeline_end_to_end(tmp_path, encoder_dir, capsys):
    out = tmp_path / "run"
    code, output = _run(["train", "summarize", "--data", "cail2020_sfzy_sample", "--encoder",
                                      str(encoder_dir), "--train-limit", "6", "--folds", "2", "--extractor-epochs",
                                      "2", "--max-steps", "2", "--batch-size", "4", "--max-source-length", "96",
                                      "--max-target-length", "24", "--output", str(out), *TINY], capsys)
    assert code == 0, output
    assert "out-of-fold clause F1" in output
    results = json.loads((out / "results.json").read_text())
    assert results["pipeline"] == "extract-then-generate" and results["copy"] is True
    assert (results["train"], results["dev"], results["test_texts"]) == (5, 1, 1)
    assert set(results["test_rouge"]) == {"rouge1", "rouge2", "rougeL", "weighted"}
    for fold in ("fold-0", "fold-1", "all"):
        assert (out / "extractor" / fold / "last" / "model.safetensors").is_file()
    assert (out / "best" / "copy_head.pt").is_file()
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    docs = load_sfzy(DATA / "cail2020_sfzy_sample", 6)
    assert [r["reference"] for r in rows] == [d.summary for d in docs[5:]]


def test_lcsts_generator_only_without_copy(tmp_path, capsys):
    out = tmp_path / "run"
    code, output = _run(["train", "summarize", "--data", "lcsts_clge", "--no-copy", "--loss", "ce",
                                      "--train-limit", "16", "--eval-limit", "4", "--test-limit", "3",
                                      "--max-steps", "1", "--batch-size", "8", "--max-source-length", "48",
                                      "--max-target-length", "16", "--output", str(out), *TINY], capsys)
    assert code == 0, output
    results = json.loads((out / "results.json").read_text())
    assert results["pipeline"] == "generate" and results["test_texts"] == 3
    assert not (out / "best" / "copy_head.pt").exists()


@pytest.mark.parametrize("args,message", [(["--noise", "1.5"], "--noise"), (["--folds", "1"], "--folds"),
                                          (["--encoder", "no-such-model"], "--encoder"),
                                          (["--dev", "x.tsv"], "--dev"), (["--threshold", "1"], "--threshold")])
def test_bad_options_refused_before_work(tmp_path, args, message, capsys):
    out = tmp_path / "run"
    code, output = _run(["train", "summarize", "--output", str(out), *args], capsys)
    assert code == 1 and output.startswith("error: ") and message in output, output
    assert "Traceback" not in output and not out.exists()
