"""BERT-whitening (spec §3): the fitted transform's properties, sklearn parity, rank checks, save/apply/export."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from kexue.embeddings import SentenceEncoder
from kexue.embeddings.whitening import (Whitening, WhiteningRankWarning, fit_whitening, fit_whitening_on_texts,
                                        parse_whitening)
from kexue.errors import ConfigError


def _data(n=500, d=8, seed=0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d))  # correlated, anisotropic, shifted: what raw BERT vectors look like
    return rng.normal(size=(n, d)) @ mixing + rng.normal(size=d) * 3


def _cos(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def test_zero_mean_identity_covariance_on_fitting_data():
    x = _data()
    w = fit_whitening(x)
    y = (x - w.mean) @ w.kernel
    assert np.abs(y.mean(axis=0)).max() < 1e-10
    assert np.abs(np.cov(y.T, ddof=1) - np.eye(8)).max() < 1e-8
    # the kernel also satisfies W^T Sigma W = I against numpy's own covariance
    assert np.abs(w.kernel.T @ np.cov(x.T) @ w.kernel - np.eye(8)).max() < 1e-8


def test_top_k_is_first_k_columns_of_full_transform():
    x = _data()
    full, top3 = fit_whitening(x), fit_whitening(x, n_components=3)
    assert top3.kernel.shape == (8, 3)
    np.testing.assert_allclose(top3.kernel, full.kernel[:, :3], rtol=0, atol=1e-12)
    np.testing.assert_allclose(top3.transform(x), full.transform(x)[:, :3], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(full.truncate(3).kernel, full.kernel[:, :3])


def test_eigenvalues_descend_and_match_numpy_eigh():
    x = _data()
    w = fit_whitening(x)
    reference = np.sort(np.linalg.eigvalsh(np.cov(x.T)))[::-1]
    np.testing.assert_allclose(w.eigenvalues, reference, rtol=1e-10)


@pytest.mark.parametrize("k", [None, 3])
def test_cosine_invariant_to_constant_shift(k):
    x = _data()
    shift = np.random.default_rng(5).normal(size=8) * 10
    a, b = x[:250], x[250:]
    w, ws = fit_whitening(x, k), fit_whitening(x + shift, k)
    np.testing.assert_allclose(_cos(ws.transform(a + shift), ws.transform(b + shift)),
                               _cos(w.transform(a), w.transform(b)), rtol=0, atol=1e-8)


@pytest.mark.parametrize("k", [8, 3])
def test_equals_sklearn_pca_whiten_up_to_sign(k):
    from sklearn.decomposition import PCA

    x = _data()
    ours = fit_whitening(x, k).transform(x)
    theirs = PCA(n_components=k, whiten=True, svd_solver="full").fit(x).transform(x)
    signs = np.sign((ours * theirs).sum(axis=0))  # one sign per component
    np.testing.assert_allclose(ours * signs, theirs, rtol=0, atol=1e-8)
    a, b = slice(0, 250), slice(250, 500)
    np.testing.assert_allclose(_cos(ours[a], ours[b]), _cos(theirs[a], theirs[b]), rtol=0, atol=1e-8)


def test_rank_deficient_input_is_refused_without_eps():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 3)) @ rng.normal(size=(3, 6))  # rank 3 in 6 dimensions
    with pytest.raises(ConfigError, match=r"rank 3.*--whitening 3 or less"):
        fit_whitening(x)
    with pytest.raises(ConfigError, match="rank 3"):
        fit_whitening(x, n_components=4)
    w = fit_whitening(x, n_components=3)  # up to the rank it works and whitens
    y = w.transform(x)
    assert np.isfinite(y).all()
    assert np.abs(np.cov(y.T) - np.eye(3)).max() < 1e-8


def test_fewer_vectors_than_dimensions():
    x = np.random.default_rng(2).normal(size=(5, 10))  # N <= d: rank at most N - 1 = 4
    with pytest.raises(ConfigError, match=r"N - 1 = 4"):
        fit_whitening(x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        w = fit_whitening(x, eps=1e-6)
    assert any(issubclass(c.category, WhiteningRankWarning) for c in caught)
    y = w.transform(x)
    assert w.kernel.shape == (10, 10) and np.isfinite(w.kernel).all() and np.isfinite(y).all()
    assert w.rank == 4
    # the floored kernel is still orthogonal directions scaled by (λ + eps)^-1/2
    gram = w.kernel.T @ w.kernel
    np.testing.assert_allclose(np.diag(gram), 1 / (np.concatenate([w.eigenvalues, np.zeros(5)]) + 1e-6), rtol=1e-8)
    assert np.abs(gram - np.diag(np.diag(gram))).max() < 1e-6 * np.abs(gram).max()


def test_bad_arguments():
    x = _data(n=20, d=4)
    for kwargs in ({"n_components": 0}, {"n_components": 5}, {"eps": -1.0}):
        with pytest.raises(ConfigError):
            fit_whitening(x, **kwargs)
    with pytest.raises(ConfigError, match="at least 2"):
        fit_whitening(x[:1])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        fit_whitening(bad)
    assert parse_whitening("full") == "full" and parse_whitening("none") == "none" and parse_whitening("3") == 3
    for text in ("0", "-2", "half"):
        with pytest.raises(ConfigError, match="--whitening"):
            parse_whitening(text)


def test_save_load_round_trip(tmp_path):
    x = _data()
    w = fit_whitening(x, 5, fit_on="stsb_en train", transductive=False)
    w.save(tmp_path)
    back = Whitening.load(tmp_path)
    np.testing.assert_array_equal(back.kernel, w.kernel)
    np.testing.assert_array_equal(back.mean, w.mean)
    assert (back.rank, back.fit_on, back.transductive, back.num_vectors) == (8, "stsb_en train", False, 500)
    assert Whitening.load(tmp_path / "none") is None


SENTENCES = ["A plane is taking off.", "An air plane is taking off.", "A man is playing a large flute.",
             "Three men are playing chess.", "A woman slices an onion.", "Dogs run on the grass.",
             "The cat sleeps.", "Someone is cooking rice in a pot."]


def test_encoder_saves_applies_and_exports_whitening(tmp_path, tiny_bert_dir):
    from sentence_transformers import SentenceTransformer

    from kexue.embeddings.export import export_sentence_transformers

    encoder = SentenceEncoder.from_pretrained(tiny_bert_dir, pooling="last-avg")
    raw = encoder.encode(SENTENCES)
    w = fit_whitening_on_texts(encoder, SENTENCES + SENTENCES[:2], n_components=4, fit_on="test sentences",
                               transductive=True)
    assert w.num_vectors == len(SENTENCES)  # duplicates counted once
    encoder.whitening = w
    expected = ((raw.astype(np.float64) - w.mean) @ w.kernel).astype(np.float32)
    np.testing.assert_allclose(encoder.encode(SENTENCES), expected, rtol=0, atol=1e-6)
    normalized = encoder.encode(SENTENCES, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(normalized, axis=1), 1.0, atol=1e-6)

    encoder.save_pretrained(tmp_path / "run")
    loaded = SentenceEncoder.from_pretrained(tmp_path / "run")
    assert loaded.whitening is not None and loaded.whitening.transductive
    ours = loaded.encode(SENTENCES)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)

    out = export_sentence_transformers(loaded, tmp_path / "st")
    st = SentenceTransformer(str(out), device="cpu")
    theirs = st.encode(SENTENCES, convert_to_numpy=True, batch_size=3)
    assert theirs.shape == (len(SENTENCES), 4)
    scale = np.abs(ours).max()
    assert np.abs(ours - theirs).max() < 1e-5 * max(scale, 1.0)
