"""SPACES copy-constrained decoding (spec arch §12 step 5): tag 1 emits only source tokens, tag 2 extends a source
n-gram, tag 2 never follows a free token; the wrapped model's word logits are the backbone's."""

import pytest
import torch
from torch import nn

from kexue.generation import generate
from kexue.generation.copy_constraint import CopyConstraint, CopyTagModel, allowed_tokens, copy_generate
from kexue.models import Transformer, TransformerConfig

V, END = 30, 2


def _backbone(seed=0):
    torch.manual_seed(seed)
    cfg = TransformerConfig(family="bert", vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0, mlm=True)
    return Transformer(cfg).eval()


def _head(tag_bias):
    head = nn.Linear(32, 3)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor(tag_bias, dtype=torch.float))
    return head


def test_allowed_tokens_hand_cases():
    source = [5, 6, 7, 5, 8]
    assert allowed_tokens(0, [1], source) is None
    assert allowed_tokens(1, [1], source) == {5, 6, 7, 8}
    assert allowed_tokens(2, [5], source) == {6, 8}          # both occurrences of the 1-gram
    assert allowed_tokens(2, [7, 5], source) == {8}          # the longest n-gram (7 5) wins
    assert allowed_tokens(2, [9, 8], source) == {5, 6, 7, 8}  # 8 ends the source: fall back to tag 1


def test_processor_rules_on_hand_logits():
    sources = [[5, 6, 7]]
    proc = CopyConstraint(sources, END, top_k=None)
    logits = torch.zeros(3, V + 3)
    logits[:, 20] = 50.0                       # the model "wants" token 20, not in the source
    logits[:, V:] = torch.tensor([0.0, 1.0, 2.0])  # tag 2 preferred
    prefix = torch.tensor([[5], [20], [7]])
    out = proc(prefix, logits, torch.zeros(3, dtype=torch.long))
    assert proc.last_tags == [2, 1, 2]         # after 20 (not in the source) tag 2 is forbidden -> tag 1
    finite = [set(torch.isfinite(row).nonzero()[:, 0].tolist()) for row in out]
    assert finite[0] == {6, END}               # continues 5 -> 6
    assert finite[1] == {5, 6, 7, END}
    assert finite[2] == {5, 6, 7, END}         # 7 ends the source: fall back to tag 1
    assert torch.isinf(out[:, V:]).all()
    top2 = CopyConstraint(sources, END, top_k=2)(prefix[:, :0], torch.randn(3, V + 3), torch.zeros(3).long())
    assert (torch.isfinite(top2).sum(dim=1) == 2).all()


def test_wrapped_model_word_logits_equal_backbone():
    backbone = _backbone()
    wrapped = CopyTagModel(backbone, _head([0.0, 0.0, 0.0]))
    ids = torch.tensor([[1, 5, 6, 7, END]])
    types = torch.zeros_like(ids)
    full = wrapped(ids, torch.ones_like(ids), types, mask_kind="unilm").mlm_logits
    ref = backbone(ids, torch.ones_like(ids), types, mask_kind="unilm").mlm_logits
    assert full.shape == (1, 5, V + 3)
    torch.testing.assert_close(full[..., :V], ref)


@pytest.mark.parametrize("strategy,beams", [("greedy", 1), ("beam", 3)])
def test_tag1_decoding_never_leaves_the_source(strategy, beams):
    backbone = _backbone(1)
    sources = [[5, 6, 7, 8], [10, 11, 12, 13, 14, 15]]
    ids = torch.tensor([[1, 5, 6, 7, 8, END, 0, 0], [1, 10, 11, 12, 13, 14, 15, END]])
    out = copy_generate(backbone, _head([0.0, 5.0, 0.0]), ids, sources, end_token_id=END, top_k=10,
                        strategy=strategy, num_beams=beams, max_new_tokens=12)
    free = generate(backbone, ids, end_token_id=END, strategy=strategy, num_beams=beams, max_new_tokens=12)
    for b, source in enumerate(sources):
        emitted = out.sequences[b, 0, :out.lengths[b, 0]].tolist()
        assert emitted and set(emitted) <= set(source) | {END}
    # the unconstrained random model does leave the source: the constraint is doing the work
    assert any(not set(free.sequences[b, 0, :free.lengths[b, 0]].tolist()) <= set(s) | {END}
               for b, s in enumerate(sources))


@pytest.mark.parametrize("use_cache", [True, False])
def test_tag2_decoding_extends_source_ngrams(use_cache):
    backbone = _backbone(2)
    source = [5, 6, 7, 9, 5, 8, 11, 12]
    ids = torch.tensor([[1, *source, END]])
    out = copy_generate(backbone, _head([0.0, 1.0, 5.0]), ids, [source], end_token_id=END, top_k=10,
                        max_new_tokens=10, use_cache=use_cache)
    emitted = [t for t in out.sequences[0, 0, :out.lengths[0, 0]].tolist() if t != END]
    assert len(emitted) >= 2
    bigrams = set(zip(source, source[1:]))
    for prev, tok in zip(emitted, emitted[1:]):
        # tag 2 after a source token: (prev, tok) is a source bigram, unless prev ends the source (fallback)
        assert (prev, tok) in bigrams or prev == source[-1]
