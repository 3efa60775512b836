"""Whitening through the CLI: `kexue whiten` fit/save, applied by `encode` / `similarity` / `eval sts`, exported to
sentence-transformers with the same vectors; `eval sts --whitening K --fit-on ...` names its fitting data."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from kexue.data.registry import load_pairs
from kexue.embeddings import SentenceEncoder
from kexue.embeddings.whitening import fit_whitening

from _cli import run_cli


def test_whiten_encode_similarity_export_round_trip(tmp_path, tiny_bert_dir, kexue_data):
    sentences = tmp_path / "fit.txt"
    pairs = load_pairs("stsb_en", "train")[:40]
    texts = list(dict.fromkeys(t for p in pairs for t in (p.text_a, p.text_b)))
    sentences.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "whitened"
    r = run_cli(["whiten", str(tiny_bert_dir), str(out), "--fit-on", str(sentences), "--whitening", "8"])
    assert r.code == 0, r.stderr
    assert (out / "whitening.safetensors").is_file()

    # encode applies it: equal to an independent float64 fit on the raw vectors of the same sentences
    raw = SentenceEncoder.from_pretrained(tiny_bert_dir).encode(texts)
    reference = fit_whitening(raw, 8)
    probe = ["A man is playing a flute.", "A woman is slicing an onion.", "Two dogs run."]
    r = run_cli(["encode", "--model", str(out)], stdin=("\n".join(probe) + "\n").encode())
    assert r.code == 0, r.stderr
    ours = np.load(io.BytesIO(r.stdout))
    raw_probe = SentenceEncoder.from_pretrained(tiny_bert_dir).encode(probe).astype(np.float64)
    expected = (raw_probe - reference.mean) @ reference.kernel
    assert ours.shape == (3, 8)
    np.testing.assert_allclose(np.abs(ours), np.abs(expected), rtol=0, atol=2e-4 * np.abs(expected).max())

    r = run_cli(["similarity", "--model", str(out), probe[0], probe[1]])
    cos = float(expected[0] @ expected[1] / np.linalg.norm(expected[0]) / np.linalg.norm(expected[1]))
    assert abs(float(r.stdout.decode()) - cos) < 1e-4

    st_dir = tmp_path / "st"
    assert run_cli(["export", "--format", "sentence-transformers", str(out), str(st_dir)]).code == 0
    from sentence_transformers import SentenceTransformer

    theirs = SentenceTransformer(str(st_dir), device="cpu").encode(probe, convert_to_numpy=True)
    assert np.abs(theirs - ours).max() < 1e-5 * max(1.0, np.abs(ours).max())


def _json(stdout: bytes) -> dict:
    text = stdout.decode()
    return json.loads(text[text.index("\n{") + 1:] if not text.startswith("{") else text)  # after the log lines


def _small_dataset(tmp_path):
    folder = tmp_path / "sts_small"
    folder.mkdir()
    for split, start in (("train", 0), ("dev", 0), ("test", 0)):
        pairs = load_pairs("stsb_en", split)[start:start + 30]
        lines = [f"{p.text_a}\t{p.text_b}\t{p.label:g}" for p in pairs]
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_eval_sts_whitening_options(tmp_path, tiny_bert_dir, kexue_data):
    base = ["eval", "sts", "--model", str(tiny_bert_dir), "--data", str(_small_dataset(tmp_path)),
            "--score-range", "0,5"]
    raw = run_cli(base)
    assert raw.code == 0, raw.stderr
    r = run_cli(base + ["--whitening", "8", "--fit-on", "task"])
    assert r.code == 0, r.stderr
    results = _json(r.stdout)
    assert results["whitening"]["components"] == 8 and results["whitening"]["transductive"] is True
    assert results["whitening"]["num_vectors"] > 100  # train + dev + test, both sides
    assert "transductive" in results["whitening"]["fit_on"]
    assert results["dev"]["spearman"] != _json(raw.stdout)["dev"]["spearman"]
    r = run_cli(base + ["--whitening", "8", "--fit-on", "train"])
    assert r.code == 0, r.stderr
    assert _json(r.stdout)["whitening"]["transductive"] is False
    # refusals name the flag
    r = run_cli(base + ["--whitening", "8"])
    assert r.code == 1 and "--fit-on" in r.stderr
    r = run_cli(base + ["--whitening", "half", "--fit-on", "task"])
    assert r.code == 1 and "--whitening" in r.stderr


def test_rank_deficient_fit_is_a_clear_error(tmp_path, tiny_bert_dir):
    few = tmp_path / "few.txt"
    few.write_text("a cat\na dog\nthe sun\n", encoding="utf-8")  # 3 vectors of width 32: rank <= 2
    r = run_cli(["whiten", str(tiny_bert_dir), str(tmp_path / "w"), "--fit-on", str(few)])
    assert r.code == 1 and "rank 2" in r.stderr and "--whitening 2" in r.stderr
    assert not (tmp_path / "w").exists()
