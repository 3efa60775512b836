"""Unargmaxable classes (spec §10): the article's 2-D example, bias flips, a planted class found, the LP against
independent references (convex-hull vertices, the dual convex-combination LP, brute-force sampling), and the
``kexue analyze unargmaxable`` command on a checkpoint with a planted token."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from scipy.spatial import ConvexHull

from kexue.analysis.unargmaxable import certified_argmaxable, find_unargmaxable, is_argmaxable, min_hull_norm
from kexue.cli import main
from kexue.models import Transformer, TransformerConfig

ARTICLE = np.array([[1, 2], [2, 1], [1, 0], [0, 1], [1, 1]], dtype=float)   # w1..w5; w5 is the centroid


def assert_witness(W, b, k, z):
    logits = W @ z + (0 if b is None else b)
    assert np.argmax(logits) == k and logits[k] > np.delete(logits, k).max()


def test_article_example():
    for k in range(4):
        ok, z = is_argmaxable(ARTICLE, None, k)
        assert ok
        assert_witness(ARTICLE, None, k, z)
        assert min_hull_norm(ARTICLE, k) > 0.1
    assert is_argmaxable(ARTICLE, None, 4) == (False, None)
    assert min_hull_norm(ARTICLE, 4) < 1e-6
    assert find_unargmaxable(ARTICLE) == ([4], [])
    assert find_unargmaxable(ARTICLE, method="frank_wolfe") == ([4], [])


def test_a_bias_on_class_5_makes_it_argmaxable_with_witness_zero():
    b = np.array([0, 0, 0, 0, 1.0])
    ok, z = is_argmaxable(ARTICLE, b, 4)
    assert ok
    assert_witness(ARTICLE, b, 4, z)
    assert_witness(ARTICLE, b, 4, np.zeros(2))                 # the article's witness z = 0
    assert certified_argmaxable(ARTICLE, b)[4]
    assert find_unargmaxable(ARTICLE, b) == ([], [])


@pytest.mark.parametrize("b1,b2", [(0.0, 0.0), (0.3, -1.1), (2.0, 0.5)])
def test_one_dimensional_midpoint_needs_a_bias_above_the_average(b1, b2):
    W = np.array([[0.0], [2.0], [1.0]])
    for b3 in (-1.0, 0.0, 0.45, 0.9, 1.3, 2.0):
        ok, z = is_argmaxable(W, np.array([b1, b2, b3]), 2)
        assert ok == (2 * b3 > b1 + b2 + 1e-12), b3
        if ok:
            assert_witness(W, np.array([b1, b2, b3]), 2, z)
    assert is_argmaxable(W, np.array([0, 0, 0.0]), 2)[0] is False
    assert is_argmaxable(W, np.array([0, 0, 0.9]), 2)[0] is True


def test_equal_norm_vectors_without_bias_are_all_argmaxable():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(1000, 8))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    assert certified_argmaxable(W).all()
    assert find_unargmaxable(W) == ([], [])
    for k in range(0, 1000, 100):                              # the LP itself, without the pre-filter
        ok, z = is_argmaxable(W, None, k)
        assert ok
        assert_witness(W, None, k, z)


def dual_unargmaxable(W, b, k):
    """Independent reference: k is unargmaxable iff (w_k, b_k) lies under the convex combinations of the others:
    α ≥ 0, Σα = 1, Σα w_i = w_k, Σα b_i ≥ b_k (Farkas / LP duality)."""
    others = np.delete(np.arange(len(W)), k)
    a_eq = np.vstack([W[others].T, np.ones(len(others))])
    b_eq = np.concatenate([W[k], [1.0]])
    res = linprog(np.zeros(len(others)), A_ub=-b[others][None, :], b_ub=[-b[k]], A_eq=a_eq, b_eq=b_eq,
                  bounds=[(0, None)] * len(others), method="highs")
    return res.status == 0


def test_planted_class_inside_the_hull_is_found_and_agrees_with_the_dual():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(40, 5))
    b = rng.normal(size=40) * 0.5
    alpha = rng.dirichlet(np.ones(6))
    W[39] = alpha @ W[:6]                                      # inside the hull of rows 0..5
    b[39] = alpha @ b[:6] - 0.2                                # and below their biases
    found, undecided = find_unargmaxable(W, b)
    assert 39 in found and undecided == []
    assert found == [k for k in range(40) if dual_unargmaxable(W, b, k)]
    vertex = int(np.argmax(np.linalg.norm(W, axis=1)))          # the longest vector: a vertex, certified
    assert vertex not in found and is_argmaxable(W, b, vertex)[0]
    b[39] = alpha @ b[:6] + 0.5                                # a bias above the hull's lifts it out
    assert is_argmaxable(W, b, 39)[0]


def test_constraint_generation_agrees_with_the_full_lp():
    rng = np.random.default_rng(5)
    W = rng.normal(size=(40, 3)) * rng.uniform(0.3, 1.5, size=(40, 1))
    b = rng.normal(size=40) * 0.3
    for k in range(40):
        small = is_argmaxable(W, b, k, working_set=2)
        full = is_argmaxable(W, b, k, working_set=40)
        assert small[0] == full[0] == (not dual_unargmaxable(W, b, k)), k
        if small[0]:
            assert_witness(W, b, k, small[1])


@pytest.mark.parametrize("seed", range(4))
def test_lp_agrees_with_hull_vertices_and_brute_force_sampling(seed):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(12, 2)) * rng.uniform(0.2, 2.0, size=(12, 1))
    hull = set(ConvexHull(W).vertices.tolist())                 # no bias: argmaxable = strict hull vertices
    found, _ = find_unargmaxable(W, prefilter=False)
    assert set(range(12)) - set(found) == hull
    b = rng.normal(size=12)
    found_b, _ = find_unargmaxable(W, b, prefilter=False)
    angles = np.linspace(0, 2 * np.pi, 2000, endpoint=False)
    radii = np.geomspace(1e-3, 1e3, 80)
    z = (radii[:, None, None] * np.stack([np.cos(angles), np.sin(angles)], -1)[None]).reshape(-1, 2)
    winners = set(np.argmax(z @ W.T + b, axis=1).tolist())
    assert winners.isdisjoint(found_b)                          # sampling never reaches an LP-unargmaxable class
    for k in set(range(12)) - set(found_b) - winners:          # argmaxable in a region the grid missed
        ok, witness = is_argmaxable(W, b, k)
        assert ok
        assert_witness(W, b, k, witness)
    assert found_b == [k for k in range(12) if dual_unargmaxable(W, b, k)]


def test_analyze_unargmaxable_command_finds_a_planted_token(tmp_path, capsys):
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(family="bert", vocab_size=60, hidden_size=16, num_hidden_layers=1,
                                          num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
                                          mlm=True))
    with torch.no_grad():
        E = model.embeddings.word_embeddings.weight
        E[7] = 0.5 * (E[3] + E[11])
        model.mlm_head.bias[7] = 0.5 * (model.mlm_head.bias[3] + model.mlm_head.bias[11]) - 0.1
    model.save_pretrained(tmp_path / "m")
    out_json = tmp_path / "u.json"
    try:
        main(["analyze", "unargmaxable", "--model", str(tmp_path / "m"), "--json", str(out_json)])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr().out
    result = json.loads(out_json.read_text())
    W, b = E.detach().double().numpy(), model.mlm_head.bias.detach().double().numpy()
    expected = [k for k in range(60) if dual_unargmaxable(W, b, k)]   # 7, and the all-zero [PAD] row 0 if inside
    assert code == 0 and 7 in expected and result["unargmaxable"] == expected
    assert result["classes"] == 60 and result["dim"] == 16
    assert f"unargmaxable: {len(expected)}: " in out and ", 7" in out
    for bad in (["--head", "pooler"], ["--method", "simplex"], ["--max-lp", "-1"]):
        with pytest.raises(SystemExit) as exit_:
            main(["analyze", "unargmaxable", "--model", str(tmp_path / "m"), *bad])
        assert exit_.value.code == 1
        assert bad[0] in capsys.readouterr().err
