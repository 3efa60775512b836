"""SimBERT (spec §4): UniLM source independence, the similarity and distillation losses, padding invariance of the
generation loss, the noise collator, batched generation re-ranked by the model's cosine, the index."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kexue.data.masking import MaskingConfig
from kexue.data.tokenization import Tokenizer
from kexue.losses.simbert import cosine_matrix_distill_loss, simbert_similarity_loss, similarity_targets
from kexue.models import Transformer, TransformerConfig
from kexue.tasks import simbert_generate
from kexue.tasks.seq2seq import seq2seq_loss
from kexue.tasks.simbert import SimBERTModel
from kexue.tasks.simbert_data import SimBERTCollator, encode_sentences
from kexue.tasks.simbert_generate import SentenceIndex, SimilarSentenceGenerator

TEXTS = ["怎么开通微信支付", "微信支付如何开通", "今天天气很好", "今天是晴天", "花呗怎么还款", "如何还花呗的钱"]


@pytest.fixture(scope="module")
def model() -> SimBERTModel:
    torch.manual_seed(0)
    tokenizer = Tokenizer.train_new(TEXTS, kind="char", vocab_size=200)
    config = TransformerConfig(family="bert", vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                               pad_token_id=tokenizer.pad_token_id, mlm=True, pooler=True)
    return SimBERTModel(Transformer(config), tokenizer, max_length=16).eval()


def _ids(model, text):
    return model.tokenizer([text])["input_ids"][0]


def test_source_states_do_not_see_the_target(model):
    a, b, b2 = _ids(model, TEXTS[0]), _ids(model, TEXTS[1]), _ids(model, TEXTS[3])
    alone = torch.tensor([a])
    with torch.no_grad():
        h_alone = model.backbone(alone, None, torch.zeros_like(alone), mask_kind="unilm").last_hidden_state
        _, v_alone = model(alone, torch.zeros_like(alone))
        for target in (b, b2):
            ids = torch.tensor([a + target[1:]])
            types = torch.tensor([[0] * len(a) + [1] * (len(target) - 1)])
            h = model.backbone(ids, None, types, mask_kind="unilm").last_hidden_state
            _, v = model(ids, types)
            torch.testing.assert_close(h[:, :len(a)], h_alone, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(v, v_alone, atol=1e-5, rtol=1e-5)


def test_similarity_target_is_row_xor_1():
    assert similarity_targets(6).tolist() == [1, 0, 3, 2, 5, 4]


def test_similarity_loss_matches_brute_force():
    torch.manual_seed(1)
    v = torch.randn(6, 5, dtype=torch.float64)
    u = v / v.norm(dim=1, keepdim=True)
    total = 0.0
    for r in range(6):  # transcription of mean_r CE(softmax(S_r), r ^ 1) with S = 30 cos, diagonal masked
        logits = [30 * float(u[r] @ u[j]) for j in range(6) if j != r]
        partner = 30 * float(u[r] @ u[r ^ 1])
        total += -partner + math.log(sum(math.exp(x) for x in logits))
    assert float(simbert_similarity_loss(v, 30.0)) == pytest.approx(total / 6, rel=1e-10)


def test_similarity_loss_vanishes_for_identical_pairs_of_orthonormal_vectors():
    n, scale = 4, 30.0
    eye = torch.eye(n, dtype=torch.float64)
    v = eye.repeat_interleave(2, dim=0)  # rows 2i, 2i+1 = e_i
    expected = math.log(1 + (2 * n - 2) * math.exp(-scale))
    assert float(simbert_similarity_loss(v, scale)) == pytest.approx(expected, rel=1e-9)
    assert expected < 1e-11
    assert float(simbert_similarity_loss(v, 60.0)) < float(simbert_similarity_loss(v, 5.0))


def test_distillation_loss_properties():
    torch.manual_seed(2)
    u, v = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    assert float(cosine_matrix_distill_loss(u, u)) == pytest.approx(0.0, abs=1e-12)
    scaled = v * torch.tensor([0.5, 2.0, 3.0, 0.1, 7.0], dtype=torch.float64)[:, None]
    assert float(cosine_matrix_distill_loss(u, scaled)) == pytest.approx(float(cosine_matrix_distill_loss(u, v)),
                                                                         rel=1e-6)
    un, vn = u.numpy(), v.numpy()
    cu = np.array([[a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in un] for a in un])
    cv = np.array([[a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in vn] for a in vn])
    assert float(cosine_matrix_distill_loss(u, v)) == pytest.approx(100 * np.mean((cu - cv) ** 2), rel=1e-5)


def test_collator_rows_and_generation_loss_unchanged_by_padding(model):
    enc = encode_sentences(model.tokenizer, TEXTS[:4], 16)
    batch = SimBERTCollator(model.tokenizer)([(enc[0], enc[1]), (enc[2], enc[3])])
    cls_id, sep_id = model.tokenizer.cls_token_id, model.tokenizer.sep_token_id
    first = batch["input_ids"][0][batch["attention_mask"][0].bool()].tolist()
    second = batch["input_ids"][1][batch["attention_mask"][1].bool()].tolist()
    assert first == [cls_id, *enc[0].ids, sep_id, *enc[1].ids, sep_id]
    assert second == [cls_id, *enc[1].ids, sep_id, *enc[0].ids, sep_id]
    assert batch["source_index"].tolist() == [0, 1, 2, 3]
    with torch.no_grad():
        loss = seq2seq_loss(model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])[0], batch)
        pad = 5
        padded = {k: torch.nn.functional.pad(v, (0, pad), value=model.tokenizer.pad_token_id if k == "input_ids"
                                             else 0) for k, v in batch.items() if v.dim() == 2}
        loss_padded = seq2seq_loss(model(padded["input_ids"], padded["token_type_ids"],
                                         padded["attention_mask"])[0], padded)
    assert float(loss_padded) == pytest.approx(float(loss), abs=1e-6)


def test_noise_corrupts_the_source_only(model):
    enc = encode_sentences(model.tokenizer, TEXTS[:2], 16)
    noisy = SimBERTCollator(model.tokenizer, 1.0, MaskingConfig(word_probability=1.0, mask_ratio=1.0,
                                                                random_ratio=0.0))
    batch = noisy([(enc[0], enc[1])])
    mask_id, n_a = model.tokenizer.mask_token_id, len(enc[0].ids)
    assert batch["input_ids"][0, 1:1 + n_a].tolist() == [mask_id] * n_a  # every word of the source masked
    assert batch["input_ids"][0, 2 + n_a:2 + n_a + len(enc[1].ids)].tolist() == list(enc[1].ids)  # target clean


def test_similar_is_one_batched_call_sorted_by_the_models_cosine(model, monkeypatch):
    calls, forwards = [], []
    real_generate, real_forward = simbert_generate.generate, model.backbone.forward
    monkeypatch.setattr(simbert_generate, "generate", lambda *a, **k: calls.append(1) or real_generate(*a, **k))
    monkeypatch.setattr(model.backbone, "forward", lambda *a, **k: forwards.append(1) or real_forward(*a, **k))
    gen = SimilarSentenceGenerator(model.backbone, model.encoder, 16)
    n, steps = 12, 6
    raw = gen.sample(TEXTS[0], n, top_p=0.95, max_new_tokens=steps, seed=3)
    assert len(raw) == n and len(calls) == 1
    assert len(forwards) <= steps  # the source pass plus one per step, whatever n is
    ranked = gen.rank(TEXTS[0], [TEXTS[0], *raw, raw[0]])
    texts = [c.text for c in ranked]
    assert TEXTS[0] not in texts and len(texts) == len(set(texts)) == len(set(raw) - {TEXTS[0], ""})
    scores = [c.score for c in ranked]
    assert scores == sorted(scores, reverse=True)
    ref = model.encoder.encode([TEXTS[0]], normalize=True)[0]
    for cand in ranked:  # one sentence at a time: the model's own cosine
        vec = model.encoder.encode([cand.text], normalize=True)[0]
        assert cand.score == pytest.approx(float(vec @ ref), abs=1e-5)


def test_batched_sampling_equals_one_at_a_time(model):
    gen = SimilarSentenceGenerator(model.backbone, model.encoder, 16)
    batched = gen.sample(TEXTS[2], 5, top_k=5, max_new_tokens=6, seed=7)
    single = [gen.sample(TEXTS[2], 1, top_k=5, max_new_tokens=6, seed=7, offset=i)[0] for i in range(5)]
    assert batched == single
    assert len(set(batched)) > 1  # really sampled
    assert gen.sample(TEXTS[2], 5, top_k=5, max_new_tokens=6, seed=8) != batched


def test_index_matches_brute_force(model):
    index = SentenceIndex(model.encoder, TEXTS)
    hits = index.search([TEXTS[1], TEXTS[4]], k=3)
    vecs = model.encoder.encode(TEXTS, normalize=True)
    for q, row in zip((1, 4), hits):
        sims = vecs @ vecs[q]
        assert [c.text for c in row] == [TEXTS[i] for i in np.argsort(-sims)[:3]]
        assert [c.score for c in row] == pytest.approx(sorted(sims, reverse=True)[:3], abs=1e-5)
