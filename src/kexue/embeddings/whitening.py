"""BERT-whitening: a linear post-processing of frozen sentence vectors (PCA whitening, optional top-k).

For row vectors ``x_i`` (``i = 1..N``): ``mu = mean_i x_i``, ``Sigma = cov(X)`` (ddof 1), ``Sigma = U diag(λ) U^T``
with ``λ_1 >= … >= λ_d``, kernel ``W = U diag(λ + eps)^{-1/2}``; the whitened vector is ``(x - mu) W[:, :k]``.
On its fitting data the transform gives zero column means and identity covariance. Everything is computed in
float64 from the SVD of the centred data (no explicit covariance matrix), so the eigenvectors equal those of
``sklearn.decomposition.PCA(whiten=True)`` up to sign.

The fitting data is always explicit (:attr:`Whitening.fit_on` says what it was): the articles fit on all the
sentences of the evaluated task (all splits, both sides, no labels), which is transductive; fitting on the
training split or on a separate file of sentences is not.

Sources: "你可能不需要BERT-flow:一个线性变换媲美BERT-flow", https://kexue.fm/archives/8069 (derivation) and
"无监督语义相似度哪家强?我们做了个比较全面的评测", https://kexue.fm/archives/8321 (the evaluation); reference
code ``compute_kernel_bias`` in github.com/bojone/BERT-whitening.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kexue.errors import CheckpointError, ConfigError

WHITENING_FILE = "whitening.safetensors"


class WhiteningRankWarning(UserWarning):
    """More components were asked for than the covariance has non-zero eigenvalues, and ``eps`` floored them."""


@dataclass
class Whitening:
    """A fitted whitening transform ``y = (x - mean) @ kernel``.

    Attributes:
        mean: ``[d]`` float64, ``mu`` of the fitting vectors.
        kernel: ``[d, k]`` float64, ``U[:, :k] diag(λ[:k] + eps)^{-1/2}``.
        eigenvalues: ``[d']`` float64 (``d' = min(N, d)``), the covariance's eigenvalues, descending.
        rank: numerical rank of the covariance (eigenvalues above ``λ_1 · max(N, d) · float64 eps``).
        eps: the floor added to the eigenvalues.
        fit_on: what the vectors were fitted on, in words (e.g. ``"stsb_en train (2 x 5749 sentences)"``).
        transductive: whether that was the evaluated data itself (the articles' protocol).
        num_vectors: ``N``, the number of fitting vectors.
    """

    mean: np.ndarray
    kernel: np.ndarray
    eigenvalues: np.ndarray
    rank: int
    eps: float = 0.0
    fit_on: str = "vectors"
    transductive: bool = False
    num_vectors: int = 0

    @property
    def n_components(self) -> int:
        """``k``, the output width."""
        return int(self.kernel.shape[1])

    @property
    def input_dim(self) -> int:
        """``d``, the input width."""
        return int(self.kernel.shape[0])

    def transform(self, x: np.ndarray, normalize: bool = False) -> np.ndarray:
        """Whitened vectors ``[N, k]`` float64 of ``x`` ``[N, d]`` (any float dtype), L2-normalised if asked.

        Raises:
            ConfigError: ``x`` is not ``[N, d]`` with this transform's ``d``.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ConfigError(f"whitening: expected vectors [N, {self.input_dim}], got shape {tuple(x.shape)}; the "
                              "whitening was fitted for another model width")
        y = (x - self.mean) @ self.kernel
        if normalize:
            norms = np.linalg.norm(y, axis=1, keepdims=True)
            y = y / np.where(norms > 0, norms, 1.0)
        return y

    def truncate(self, n_components: int) -> "Whitening":
        """The same transform keeping only the first ``n_components`` columns (the top-k components).

        Raises:
            ConfigError: ``n_components`` is not in ``1..k``.
        """
        if not 1 <= n_components <= self.n_components:
            raise ConfigError(f"--whitening {n_components}: expected 1..{self.n_components}")
        return Whitening(self.mean, self.kernel[:, :n_components].copy(), self.eigenvalues, self.rank, self.eps,
                         self.fit_on, self.transductive, self.num_vectors)

    def describe(self) -> str:
        """One line for logs and reports: components, fitting data, protocol."""
        protocol = "transductive: fitted on the evaluated data itself" if self.transductive else "not transductive"
        return (f"whitening {self.n_components}/{self.input_dim} components, fitted on {self.fit_on} "
                f"({self.num_vectors} vectors, covariance rank {self.rank}; {protocol})")

    def save(self, folder: str | Path) -> Path:
        """Write ``folder/whitening.safetensors`` (float64 arrays, the metadata as strings); returns the file."""
        from safetensors.numpy import save_file

        path = Path(folder) / WHITENING_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"mean": np.ascontiguousarray(self.mean), "kernel": np.ascontiguousarray(self.kernel),
                   "eigenvalues": np.ascontiguousarray(self.eigenvalues)}, str(path),
                  metadata={"rank": str(self.rank), "eps": repr(float(self.eps)), "fit_on": self.fit_on,
                            "transductive": str(bool(self.transductive)), "num_vectors": str(self.num_vectors)})
        return path

    @classmethod
    def load(cls, folder: str | Path) -> "Whitening | None":
        """The whitening saved in ``folder`` by :meth:`save`, or ``None`` when the folder has none.

        Raises:
            CheckpointError: the file exists but is not a readable whitening (naming it).
        """
        from safetensors import safe_open

        path = Path(folder) / WHITENING_FILE
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                arrays = {name: f.get_tensor(name) for name in ("mean", "kernel", "eigenvalues")}
            return cls(arrays["mean"], arrays["kernel"], arrays["eigenvalues"], int(meta["rank"]),
                       float(meta["eps"]), meta["fit_on"], meta["transductive"] == "True", int(meta["num_vectors"]))
        except Exception as exc:  # safetensors raises its own error types; any failure means an unreadable file
            raise CheckpointError(f"{path}: not a readable whitening file ({exc})") from exc


def fit_whitening(x: np.ndarray, n_components: int | None = None, eps: float = 0.0, *, fit_on: str = "vectors",
                  transductive: bool = False) -> Whitening:
    """Fit the whitening of the rows of ``x`` ``[N, d]`` in float64.

    Args:
        n_components: ``k``, the number of leading components kept (``None`` = all ``d``).
        eps: added to every eigenvalue before ``λ^{-1/2}`` (``>= 0``); with ``eps > 0`` directions without
            variance are scaled by ``eps^{-1/2}`` instead of failing.
        fit_on / transductive: recorded in the result (see :class:`Whitening`).

    Returns:
        a :class:`Whitening` with ``kernel`` ``[d, k]``.

    Raises:
        ConfigError: fewer than 2 vectors, non-finite values, ``k`` outside ``1..d``, ``eps < 0``, or ``k`` above
            the covariance's rank with ``eps = 0`` (``N <= d`` gives rank at most ``N - 1``; the message says the
            largest ``--whitening K`` that works, and that ``eps`` floors the rest). Never returns inf/NaN.

    Warns:
        WhiteningRankWarning: ``k`` above the rank with ``eps > 0`` (the extra components are floored noise).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ConfigError(f"whitening: expected vectors [N, d], got shape {tuple(x.shape)}")
    n, d = x.shape
    if n < 2:
        raise ConfigError(f"whitening: needs at least 2 fitting vectors to estimate a covariance, got {n}")
    if not np.isfinite(x).all():
        raise ConfigError("whitening: the fitting vectors contain inf or NaN")
    if not (isinstance(eps, (int, float)) and eps >= 0 and np.isfinite(eps)):
        raise ConfigError(f"whitening eps: expected a finite number >= 0, got {eps!r}")
    k = d if n_components is None else n_components
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= d:
        raise ConfigError(f"--whitening {n_components}: expected 'full' or a number of components in 1..{d}")
    mean = x.mean(axis=0)
    centred = x - mean
    # Sigma = Xc^T Xc / (N-1) = V diag(s^2/(N-1)) V^T: the right singular vectors are U, no d x d product needed
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    eigenvalues = s ** 2 / (n - 1)
    tol = (eigenvalues[0] if eigenvalues.size else 0.0) * max(n, d) * np.finfo(np.float64).eps
    rank = int((eigenvalues > tol).sum())
    if k > rank:
        why = (f"the covariance of the {n} fitting vectors of width {d} has rank {rank}"
               + (f" (N <= d gives at most N - 1 = {n - 1})" if n <= d else ""))
        if eps == 0:
            raise ConfigError(f"--whitening {'full' if n_components is None else k}: {why}, so {k} components "
                              f"cannot be whitened (division by a zero eigenvalue); use --whitening {max(rank, 1)} "
                              "or less, fit on more sentences, or give eps > 0 to floor the eigenvalues")
        warnings.warn(f"whitening: {why}; components {rank + 1}..{k} have (near) zero variance and are scaled by "
                      f"(λ + eps)^-1/2 with eps={eps:g}", WhiteningRankWarning, stacklevel=2)
    if k > len(s):  # N < d: no singular vector beyond N; complete the basis orthonormally (zero variance)
        basis = np.linalg.svd(vt.T, full_matrices=True)[0]  # first N columns span vt's rows
        extra = basis[:, len(s):]
        vectors = np.concatenate([vt.T, extra], axis=1)[:, :k]
        values = np.concatenate([eigenvalues, np.zeros(d - len(s))])[:k]
    else:
        vectors, values = vt.T[:, :k], eigenvalues[:k]
    kernel = vectors / np.sqrt(values + eps)
    return Whitening(mean, kernel, eigenvalues, rank, float(eps), fit_on, transductive, n)


def fit_whitening_on_texts(encoder, texts: Sequence[str], n_components: int | None = None, eps: float = 0.0, *,
                           fit_on: str, transductive: bool = False, batch_size: int = 64) -> Whitening:
    """Encode ``texts`` (duplicates counted once) with a :class:`~kexue.embeddings.SentenceEncoder` and fit on them.

    The encoder's own saved whitening is not applied: the fit is on the raw pooled vectors.

    Raises:
        ConfigError: as :func:`fit_whitening`.
    """
    unique = list(dict.fromkeys(texts))
    saved, encoder.whitening = getattr(encoder, "whitening", None), None
    try:
        vectors = encoder.encode(unique, batch_size=batch_size)
    finally:
        encoder.whitening = saved
    return fit_whitening(vectors, n_components, eps, fit_on=fit_on, transductive=transductive)


def parse_whitening(value: str | None) -> int | str | None:
    """``--whitening`` as ``None`` (not given), ``"none"``, ``"full"`` or a component count ``K >= 1``.

    Raises:
        ConfigError: anything else.
    """
    if value is None:
        return None
    text = value.strip().lower()
    if text in ("none", "full"):
        return text
    try:
        k = int(text)
    except ValueError:
        k = 0
    if k < 1:
        raise ConfigError(f"--whitening: expected none, full or a number of components K >= 1, got {value!r}")
    return k
