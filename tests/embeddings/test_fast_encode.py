"""SentenceEncoder.encode: length sorting with the order restored, and the bf16 inference path on real sentences."""

from __future__ import annotations

import numpy as np
import torch

from kexue.embeddings import SentenceEncoder


def _stsb(root, n: int) -> list[str]:
    lines = (root / "stsb_en" / "stsbenchmark.tsv").read_text(encoding="utf-8").splitlines()
    col = lines[0].split("\t").index("sentence1")
    return [line.split("\t")[col] for line in lines[1:n + 1]]


def _distinct_lengths(encoder, texts, k):
    """``k`` texts whose token counts are pairwise different (so the sorted batch layout is unique)."""
    seen, out = set(), []
    for t in texts:
        n = len(encoder.tokenize([t])[0]["input_ids"])
        if n not in seen:
            seen.add(n)
            out.append(t)
        if len(out) == k:
            break
    return out


def test_encode_restores_input_order_exactly(kexue_data):
    encoder = SentenceEncoder.from_pretrained("minilm", max_length=64)
    texts = _distinct_lengths(encoder, _stsb(kexue_data, 400), 10)
    assert len(texts) == 10
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(texts))
    # distinct lengths: both calls build the same length-sorted batches, so rows must match bit for bit
    a = encoder.encode(texts, batch_size=4)
    b = encoder.encode([texts[i] for i in perm], batch_size=4)
    assert np.array_equal(a[perm], b)
    # brute force: each sentence alone (no padding, no sorting) through the module's forward
    for i, text in enumerate(texts):
        f = encoder.tokenize([text])[0]
        with torch.no_grad():
            v = encoder(torch.tensor([f["input_ids"]]), torch.tensor([f["attention_mask"]]),
                        torch.tensor([f["token_type_ids"]]))[0].numpy()
        assert np.abs(a[i] - v).max() < 1e-5
    assert a.dtype == np.float32 and a.shape == (10, encoder.hidden_size)


def test_encode_keeps_training_mode_and_empty_input():
    encoder = SentenceEncoder.from_pretrained("minilm").train()
    assert encoder.encode([]).shape == (0, encoder.hidden_size)
    assert encoder.training


def test_bf16_weights_track_fp32_on_real_sentences(kexue_data):
    """bf16 keeps 8 significant bits (relative rounding <= 2^-9 per value); over 6 layers the per-component
    errors stay ~1e-2 relative and mostly independent across the 384 components, so the direction barely moves:
    cosine >= 0.999 to the fp32 vector on every sentence."""
    texts = _stsb(kexue_data, 200)
    fp32 = SentenceEncoder.from_pretrained("minilm", max_length=128)
    ref = fp32.encode(texts, batch_size=64, normalize=True)
    bf16 = SentenceEncoder.from_pretrained("minilm", max_length=128).to(torch.bfloat16)
    assert next(bf16.parameters()).dtype == torch.bfloat16
    got = bf16.encode(texts, batch_size=64, normalize=True)
    assert got.dtype == np.float32
    cos = (ref * got).sum(-1)
    assert cos.min() >= 0.999
    # and it is not silently fp32: bf16 rounding shows
    assert np.abs(ref - got).max() > 1e-4


def _cli(args):
    from kexue.cli import main

    try:
        main(list(args))
    except SystemExit as exit_:
        return exit_.code or 0
    return 0


def test_cli_encode_precision(kexue_data, tmp_path):
    texts = _stsb(kexue_data, 40)
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    outs = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.npy"
        assert _cli(["encode", "--model", "minilm", "-i", str(src), "-o", str(out), "--normalize",
                     "--precision", precision]) == 0
        outs[precision] = np.load(out)
    ref = SentenceEncoder.from_pretrained("minilm").encode(texts, normalize=True)
    assert np.array_equal(outs["fp32"], ref)  # the default path is the exact one
    assert (outs["bf16"] * ref).sum(-1).min() >= 0.999 and not np.array_equal(outs["bf16"], ref)
    assert _cli(["encode", "--model", "minilm", "-i", str(src), "-o", str(tmp_path / "x.npy"),
                 "--precision", "fp16"]) != 0
    assert not (tmp_path / "x.npy").exists()
