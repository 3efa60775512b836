"""The key/value cache in kexue's Transformer: incremental encoding equals encoding the whole sequence."""

from __future__ import annotations

import pytest
import torch

from kexue.errors import ConfigError
from kexue.generation import KVCache
from kexue.nn.masks import build_attention_mask
from kexue.models.transformer import incremental_mask

from _gen_models import tiny_model

CASES = [("bert", {}), ("roformer", {}), ("roformer_v2", {}), ("roformer", {"residual_attention": True}),
         ("bert", {"attention_scale": "entropy_invariant"})]


@pytest.mark.parametrize("family,overrides", CASES)
@pytest.mark.parametrize("kind", ["unilm", "causal"])
def test_incremental_equals_full(family, overrides, kind):
    model = tiny_model(family, **overrides)
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(4, 40, (2, 10), generator=g)
    types = torch.tensor([[0] * 6 + [1] * 4] * 2)
    full = model(ids, None, types, mask_kind=kind).mlm_logits
    cache = KVCache(len(model.layers))
    pieces = [model(ids[:, :6], None, types[:, :6], mask_kind=kind, past_key_values=cache).mlm_logits]
    for t in range(6, 10):
        pieces.append(model(ids[:, t:t + 1], None, types[:, t:t + 1], mask_kind=kind,
                            past_key_values=cache).mlm_logits)
    assert cache.length == 10
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-5)


def test_position_ids_path_equals_plain_forward():
    """Explicit default positions take the incremental path and give the plain encoder's numbers."""
    model = tiny_model("roformer")
    ids = torch.randint(4, 40, (2, 8))
    plain = model(ids).mlm_logits
    explicit = model(ids, position_ids=torch.arange(8).expand(2, 8)).mlm_logits
    torch.testing.assert_close(explicit, plain, atol=1e-6, rtol=1e-6)


def test_padded_row_with_own_positions_equals_row_alone():
    """A right-padded row continued at its own length equals the unpadded row (BERT absolute positions)."""
    model = tiny_model("bert")
    row = torch.randint(4, 40, (1, 5))
    alone = model(torch.cat((row, torch.tensor([[7, 8]])), 1), None, torch.tensor([[0] * 5 + [1] * 2]),
                  mask_kind="unilm").mlm_logits
    cache = KVCache(len(model.layers))
    padded = torch.cat((row, torch.zeros(1, 3, dtype=torch.long)), 1)
    model(padded, torch.tensor([[1] * 5 + [0] * 3]), torch.zeros(1, 8, dtype=torch.long), mask_kind="unilm",
          past_key_values=cache)
    step = model(torch.tensor([[7, 8]]), None, torch.ones(1, 2, dtype=torch.long), mask_kind="unilm",
                 position_ids=torch.tensor([[5, 6]]), past_key_values=cache).mlm_logits
    torch.testing.assert_close(step, alone[:, 5:], atol=1e-5, rtol=1e-5)


def test_incremental_mask_rows_equal_the_full_mask_rows():
    keep = torch.tensor([[1, 1, 1, 0, 1, 1], [1, 1, 1, 1, 1, 1]])
    types = torch.tensor([[0, 0, 0, 0, 1, 1], [0, 0, 1, 1, 1, 1]])
    for kind in ("unilm", "causal", "bidirectional"):
        full = build_attention_mask(kind, keep, types, 6)
        part = incremental_mask(kind, keep, types, past=4)
        expected = full.expand(2, 1, 6, 6)[:, :, 4:]
        assert torch.equal(part.expand(2, 1, 2, 6), expected), kind


def test_logits_to_keep():
    model = tiny_model("roformer")
    ids = torch.randint(4, 40, (2, 8))
    full = model(ids).mlm_logits
    torch.testing.assert_close(model(ids, logits_to_keep=3).mlm_logits, full[:, -3:])
    assert model(ids, logits_to_keep=0).mlm_logits is None


def test_cache_needs_attention_layers():
    model = tiny_model("roformer", token_mixing=["fnet", "attention"])
    with pytest.raises(ConfigError, match="cache needs attention"):
        model(torch.randint(4, 40, (1, 4)), past_key_values=KVCache(2))


def test_bert_position_beyond_table_is_refused():
    model = tiny_model("bert")
    with pytest.raises(ConfigError, match="max_position_embeddings"):
        model(torch.tensor([[5]]), position_ids=torch.tensor([[64]]))
