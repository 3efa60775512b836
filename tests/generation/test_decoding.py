"""generate(): cached == uncached, batched == alone == a brute-force loop, beam 1 == greedy, top-k 1 == greedy."""

from __future__ import annotations

import pytest
import torch

from kexue.errors import ConfigError
from kexue.generation import generate

from _gen_models import END, sources, tiny_model

FAMILIES = ["roformer", "bert"]


def brute_force_greedy(model, source: list[int], steps: int, mode: str) -> list[int]:
    """Re-encode ``source + target`` (one unpadded example, plain forward) and take the argmax, ``steps`` times."""
    target: list[int] = []
    for _ in range(steps):
        ids = torch.tensor([source + target])
        types = torch.tensor([[0] * len(source) + [1 if mode == "unilm" else 0] * len(target)])
        token = int(model(ids, None, types, mask_kind=mode).mlm_logits[0, -1].argmax())
        target.append(token)
        if token == END:
            break
    return target


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", ["unilm", "causal"])
def test_greedy_batched_cached_equals_brute_force(family, mode):
    model = tiny_model(family)
    ids = sources((9, 6, 3))
    out = generate(model, ids, mode=mode, end_token_id=END, max_new_tokens=7)
    assert out.sequences.shape[:2] == (3, 1)
    for b, n in enumerate((9, 6, 3)):
        expected = brute_force_greedy(model, ids[b, :n].tolist(), 7, mode)
        assert out.tolist()[b][0] == expected
        assert bool(out.finished[b, 0]) == (expected[-1] == END)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", ["unilm", "causal"])
@pytest.mark.parametrize("strategy,kwargs", [("greedy", {}), ("beam", {"num_beams": 3, "num_return_sequences": 2}),
                                             ("beam", {"num_beams": 4, "length_penalty": 1.0, "min_ends": 2})])
def test_cached_equals_uncached(family, mode, strategy, kwargs):
    model = tiny_model(family, seed=2)
    ids = sources((10, 7, 4, 2), seed=5)
    cached = generate(model, ids, mode=mode, strategy=strategy, end_token_id=END, max_new_tokens=8, **kwargs)
    uncached = generate(model, ids, mode=mode, strategy=strategy, end_token_id=END, max_new_tokens=8,
                        use_cache=False, **kwargs)
    assert torch.equal(cached.sequences, uncached.sequences)
    assert torch.equal(cached.lengths, uncached.lengths)
    torch.testing.assert_close(cached.scores, uncached.scores, atol=1e-4, rtol=1e-5)


def test_beam_batched_equals_each_example_alone():
    model = tiny_model("roformer", seed=4)
    lengths = (8, 5, 3)
    ids = sources(lengths, seed=6)
    batched = generate(model, ids, strategy="beam", num_beams=3, num_return_sequences=3, end_token_id=END,
                       max_new_tokens=6)
    for b, n in enumerate(lengths):
        alone = generate(model, ids[b:b + 1, :n], strategy="beam", num_beams=3, num_return_sequences=3,
                         end_token_id=END, max_new_tokens=6)
        assert batched.tolist()[b] == alone.tolist()[0]
        torch.testing.assert_close(batched.scores[b], alone.scores[0], atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("min_ends", [1, 2])
def test_beam_width_one_equals_greedy(min_ends):
    model = tiny_model("roformer", seed=7)
    ids = sources((9, 6, 3), seed=8)
    greedy = generate(model, ids, end_token_id=END, max_new_tokens=9, min_ends=min_ends)
    beam = generate(model, ids, strategy="beam", num_beams=1, end_token_id=END, max_new_tokens=9, min_ends=min_ends)
    assert torch.equal(greedy.sequences, beam.sequences)
    torch.testing.assert_close(greedy.scores, beam.scores, atol=1e-5, rtol=1e-5)


def test_sampling_top_k_one_equals_greedy():
    model = tiny_model("bert", seed=9)
    ids = sources((9, 6, 3), seed=10)
    greedy = generate(model, ids, end_token_id=END, max_new_tokens=8)
    sampled = generate(model, ids, strategy="sample", top_k=1, num_return_sequences=4, end_token_id=END,
                       max_new_tokens=8, generator=torch.Generator().manual_seed(0), temperature=3.0)
    assert sampled.sequences.shape[1] == 4
    for n in range(4):
        assert [row[n] for row in sampled.tolist()] == [row[0] for row in greedy.tolist()]


def test_sampling_is_reproducible_and_varied():
    model = tiny_model("roformer", seed=11)
    ids = sources((6, 4), seed=12)
    kwargs = dict(strategy="sample", num_return_sequences=6, end_token_id=END, max_new_tokens=6, temperature=5.0)
    a = generate(model, ids, generator=torch.Generator().manual_seed(1), **kwargs)
    b = generate(model, ids, generator=torch.Generator().manual_seed(1), **kwargs)
    assert torch.equal(a.sequences, b.sequences)
    assert len({tuple(s) for s in a.tolist()[0]}) > 1  # 6 samples at temperature 5 over 40 tokens differ


def test_model_mode_is_restored():
    model = tiny_model("roformer").train()
    generate(model, sources((4,)), end_token_id=END, max_new_tokens=2)
    assert model.training


@pytest.mark.parametrize("kwargs,match", [
    ({"strategy": "nucleus"}, "--strategy"),
    ({"mode": "seq2seq"}, "--mode"),
    ({"max_new_tokens": 0}, "--max-new-tokens"),
    ({"num_beams": 3}, "needs strategy"),
    ({"strategy": "beam", "num_beams": 2, "num_return_sequences": 3}, "exceeds num_beams"),
    ({"top_k": 5}, "need strategy"),
    ({"strategy": "sample", "top_p": 1.5}, "--top-p"),
    ({"strategy": "sample", "top_k": 0}, "--top-k"),
    ({"temperature": 0.0}, "--temperature"),
    ({"num_return_sequences": 2}, "needs strategy 'beam' or 'sample'"),
    ({"end_token_id": None}, "end_token_id"),
    ({"max_new_tokens": 60}, "max_position_embeddings"),
])
def test_invalid_options_are_refused(kwargs, match):
    model = tiny_model("bert")
    options = {"end_token_id": END, **kwargs}
    with pytest.raises(ConfigError, match=match):
        generate(model, sources((9,)), **options)


def test_model_without_mlm_head_is_refused():
    model = tiny_model("roformer", mlm=False)
    with pytest.raises(ConfigError, match="MLM head"):
        generate(model, sources((4,)), end_token_id=END)
