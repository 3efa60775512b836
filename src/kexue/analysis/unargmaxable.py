"""Unargmaxable classes of a softmax layer: classes that no input can make the strict argmax.

"你的语言模型有没有“无法预测的词”?", https://kexue.fm/archives/9046 (discussing Grivas et al., ACL 2022,
arXiv 2203.06462). For class vectors ``w_i`` (rows of ``W`` ``[n, d]``) and biases ``b_i``, class ``k`` is
argmaxable iff some ``z`` in ``R^d`` gives ``<w_k - w_i, z> + b_k - b_i > 0`` for every ``i != k``.

* **Exact test** (:func:`is_argmaxable`): the linear program in ``(z, s)``, ``s >= 0``,
  ``(w_k - w_i)^T z + s (b_k - b_i) >= 1`` for all ``i != k``, solved by scipy's HiGHS; it is feasible iff ``k``
  is argmaxable (``s > 0``: divide by ``s``; ``s = 0``: a large multiple of ``z`` overrides the bias). It is solved
  in its equivalent scale-free max-margin form, by exact constraint generation. The returned witness is checked:
  ``argmax(W z + b) == k``.
* **Fast pre-filter** (:func:`certified_argmaxable`): classes made the argmax by a cheap candidate input
  (``z = t·w_k`` for a few scales ``t``, and ``z = 0`` with a bias) are certified without an LP. It only ever
  certifies; everything it leaves goes to the LP.
* **Frank–Wolfe** (:func:`min_hull_norm`, Su's derivation): ``min_α ||Σ_i α_i (w_k - w_i)||`` over the simplex;
  without a bias ``k`` is unargmaxable iff this is 0 (``w_k`` in the convex hull of the others). It ignores the
  bias and approaches 0 slowly, so it is an approximation, confirmed by the LP.

The input ``z`` is taken as unconstrained in ``R^d`` (the paper's setting); a real head's input (e.g. a
LayerNorm output) is narrower, so "argmaxable" here is necessary, not sufficient, for being predictable.
"""

from __future__ import annotations

import numpy as np

from kexue.errors import ConfigError

METHODS = ("lp", "frank_wolfe")


def _check(W, b) -> tuple[np.ndarray, np.ndarray | None]:
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2 or W.shape[0] < 2:
        raise ConfigError(f"W: expected a [n_classes >= 2, dim] matrix, got shape {W.shape}")
    if b is not None:
        b = np.asarray(b, dtype=np.float64)
        if b.shape != (W.shape[0],):
            raise ConfigError(f"b: expected shape ({W.shape[0]},), got {b.shape}")
    return W, b


def is_argmaxable(W, b=None, k: int = 0, tol: float = 1e-9, working_set: int = 256
                  ) -> tuple[bool, np.ndarray | None]:
    """Exact test of class ``k`` by the LP above (scipy ``linprog``, method ``highs``).

    Solved in its scale-free max-margin form (maximise ``t`` with ``(w_k - w_i)^T z + s (b_k - b_i) >= t``,
    ``|z_j| <= 1``, ``0 <= s <= 1``; argmaxable iff ``t* > tol``, the same decision as the feasibility LP) by
    constraint generation, which stays exact: the LP over a working set of competitors (first the ``working_set``
    classes with the largest logits at ``z = w_k``) is solved; ``t* <= tol`` there means the same for the full LP (it
    has more constraints); a solution that keeps every other margin positive solves the full problem; otherwise the
    violated constraints join the working set. A vocabulary-sized head thus needs LPs of a few hundred rows.

    Args:
        W: ``[n, d]`` class vectors; b: ``[n]`` biases or ``None``; k: the class; tol: ``s`` above ``tol``
            counts as positive (margin and bias weight); working_set: the initial number of competitors.
    Returns:
        ``(True, z)`` with a witness ``z`` ``[d]`` (float64) such that ``argmax(W z + b) == k`` strictly, or
        ``(False, None)``.
    Raises:
        ConfigError: bad shapes or ``k`` out of range; RuntimeError if HiGHS fails for another reason.
    """
    from scipy.optimize import linprog

    W, b = _check(W, b)
    n, d = W.shape
    if not 0 <= k < n:
        raise ConfigError(f"class {k} outside [0, {n})")
    others = np.arange(n) != k
    dw = W[k] - W[others]                                       # [n-1, d]
    db = (b[k] - b[others]) if b is not None else np.zeros(n - 1)
    # maximise the smallest margin t over the box |z_j| <= 1, 0 <= s <= 1 (scale-free, so the same decision as
    # the feasibility LP); the central solution violates few unseen constraints
    bounds = [(-1.0, 1.0)] * d + [(0.0, 1.0) if b is not None else (0.0, 0.0)] + [(None, 1.0)]
    cost = np.zeros(d + 2)
    cost[-1] = -1.0
    active = np.argsort(dw @ W[k] + db)[:working_set]            # the strongest competitors at z = w_k
    while True:
        a_ub = np.hstack([-dw[active], -db[active, None], np.ones((len(active), 1))])   # t - (dw z + s db) <= 0
        res = linprog(cost, A_ub=a_ub, b_ub=np.zeros(len(active)), bounds=bounds, method="highs")
        if res.status != 0:
            raise RuntimeError(f"HiGHS could not decide class {k}: {res.message}")
        z, s, t = res.x[:d], res.x[d], res.x[d + 1]
        if t <= tol:                                              # no positive margin even on a subset
            return False, None
        margins = dw @ z + s * db
        violated = np.flatnonzero(margins <= 0.5 * t)
        if violated.size == 0:
            break
        worst = violated[np.argsort(margins[violated])[:max(working_set, 1)]]
        active = np.union1d(active, worst)
    witness = z / s if s > tol else z * (1.0 + 4.0 * np.abs(db).max() / t)  # s = 0: z's margins (>= t/2) win
    for _ in range(8):                                            # check it; rescale a numerically weak witness
        logits = W @ witness + (b if b is not None else 0.0)
        if logits[k] > np.delete(logits, k).max():
            return True, witness
        witness = witness * 10.0
    raise RuntimeError(f"HiGHS found class {k} argmaxable but its witness does not make it the argmax")


def certified_argmaxable(W, b=None, scales=(1.0, 10.0, 1e3, 1e6)) -> np.ndarray:
    """Boolean ``[n]``: classes certified argmaxable by a candidate input (``z = t·w_k`` for each ``t`` in
    ``scales``, times ``1/||w_k||``; ``z = 0`` when there is a bias). ``False`` means "not certified", not
    "unargmaxable"."""
    W, b = _check(W, b)
    n = W.shape[0]
    norms = np.linalg.norm(W, axis=1)
    norms[norms == 0] = 1.0
    bias = b if b is not None else np.zeros(n)
    ok = np.zeros(n, dtype=bool)
    for start in range(0, n, 1024):                               # column blocks: never an [n, n] matrix
        block = np.arange(start, min(n, start + 1024))
        gram = W @ W[block].T                                     # [n, m]: logits of z = w_k, k in block
        for t in scales:
            logits = gram * (t / norms[block])[None, :] + bias[:, None]
            own = logits[block, np.arange(len(block))]
            logits[block, np.arange(len(block))] = -np.inf
            ok[block] |= own > logits.max(axis=0)
    if b is not None:
        order = np.argsort(b)
        if b[order[-1]] > b[order[-2]]:
            ok[order[-1]] = True                                  # z = 0
    return ok


def min_hull_norm(W, k: int, iters: int = 2000) -> float:
    """``min_α ||Σ_{i≠k} α_i (w_k - w_i)||`` over the simplex by Frank–Wolfe with exact line search (bias ignored).

    Zero iff ``w_k`` lies in the convex hull of the other rows (then ``k`` is unargmaxable without bias).
    """
    W, _ = _check(W, None)
    dw = W[k] - np.delete(W, k, axis=0)
    v = dw.mean(axis=0)
    for _ in range(iters):
        j = int(np.argmin(dw @ v))
        direction = v - dw[j]
        denom = float(direction @ direction)
        if denom <= 0:
            break
        gamma = min(1.0, max(0.0, float(v @ direction) / denom))
        if gamma == 0.0:
            break
        v = v - gamma * direction
    return float(np.linalg.norm(v))


def find_unargmaxable(W, b=None, method: str = "lp", prefilter: bool = True, fw_tol: float = 1e-6,
                      max_lp: int | None = None) -> tuple[list[int], list[int]]:
    """All unargmaxable classes of ``(W, b)``.

    Args:
        method: ``"lp"`` (exact) or ``"frank_wolfe"`` (``min_hull_norm < fw_tol``; only without a bias).
        prefilter: skip the classes :func:`certified_argmaxable` certifies.
        max_lp: decide at most this many uncertified classes (``--max-lp``); ``None`` = all.
    Returns:
        ``(unargmaxable, undecided)``: sorted class indices; ``undecided`` are the classes left over by ``max_lp``.
    Raises:
        ConfigError: unknown method (``--method``), ``frank_wolfe`` with a bias, negative ``max_lp``.
    """
    if method not in METHODS:
        raise ConfigError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")
    W, b = _check(W, b)
    if method == "frank_wolfe" and b is not None:
        raise ConfigError("--method frank_wolfe ignores biases; use --method lp for a layer with a bias")
    if max_lp is not None and max_lp < 0:
        raise ConfigError(f"--max-lp: expected a non-negative integer, got {max_lp}")
    n = W.shape[0]
    todo = np.flatnonzero(~certified_argmaxable(W, b)) if prefilter else np.arange(n)
    undecided = [] if max_lp is None else [int(k) for k in todo[max_lp:]]
    todo = todo if max_lp is None else todo[:max_lp]
    if method == "lp":
        found = [int(k) for k in todo if not is_argmaxable(W, b, int(k))[0]]
    else:
        found = [int(k) for k in todo if min_hull_norm(W, int(k)) < fw_tol]
    return sorted(found), undecided


def output_layer(model, head: str = "mlm") -> tuple[np.ndarray, np.ndarray | None]:
    """``(W [n, d], b [n] | None)`` of a kexue Transformer's output layer: ``mlm`` = the tied decoder (word
    embeddings and the MLM bias; the logits are ``transform(h) · E^T + bias``), ``nsp`` = ``cls.seq_relationship``.

    Raises:
        ConfigError: an unknown head (``--head``) or a model without it.
    """
    if head == "mlm":
        if getattr(model, "mlm_head", None) is None:
            raise ConfigError("--head mlm: the checkpoint has no masked-LM head (cls.predictions.*)")
        bias = model.mlm_head.bias
        W = model.get_input_embeddings().weight
        return W.detach().double().cpu().numpy(), (None if bias is None else bias.detach().double().cpu().numpy())
    if head == "nsp":
        if getattr(model, "nsp_head", None) is None:
            raise ConfigError("--head nsp: the checkpoint has no next-sentence head (cls.seq_relationship.*)")
        lin = model.nsp_head.seq_relationship
        return lin.weight.detach().double().cpu().numpy(), lin.bias.detach().double().cpu().numpy()
    raise ConfigError(f"--head: expected mlm or nsp, got {head!r}")
