"""NSP-BERT (spec §8): batched == one at a time, label permutation, token types per segment, and on a tiny BERT
pretrained a few steps with NSP (transformers' own model and label convention) coherent pairs score higher."""

from __future__ import annotations

import random

import pytest
import torch

from kexue.errors import ConfigError
from kexue.models import Transformer, TransformerConfig
from kexue.prompting.nsp_zeroshot import NSPZeroShotClassifier
from _prompt_stubs import char_tokenizer, sentiment_texts

PROMPTS = ["这是很好的", "这是很差的", "这是一篇体育新闻", "娱乐"]


@pytest.fixture(scope="module")
def data(kexue_data):
    texts, _ = sentiment_texts(kexue_data, n=200)
    return texts, char_tokenizer(texts)


def kexue_nsp_model(tok, nsp=True):
    torch.manual_seed(0)
    return Transformer(TransformerConfig(family="bert", vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, intermediate_size=48, max_position_embeddings=64,
                                         pooler=True, nsp=nsp, pad_token_id=tok.pad_token_id)).eval()


@pytest.mark.parametrize("position", ["prefix", "suffix"])
def test_batched_scores_equal_one_at_a_time(data, position):
    texts, tok = data
    clf = NSPZeroShotClassifier(kexue_nsp_model(tok), tok, PROMPTS, position=position, max_length=48, batch_size=7)
    batched = clf.scores(texts[:9])
    single = torch.cat([clf.scores([t]) for t in texts[:9]])
    assert batched.shape == (9, len(PROMPTS))
    assert torch.allclose(batched, single, atol=1e-5)
    assert (batched <= 0).all()


def test_permuting_the_labels_permutes_the_columns(data):
    texts, tok = data
    model = kexue_nsp_model(tok)
    perm = [2, 0, 3, 1]
    base = NSPZeroShotClassifier(model, tok, PROMPTS).scores(texts[:5])
    permuted = NSPZeroShotClassifier(model, tok, [PROMPTS[i] for i in perm]).scores(texts[:5])
    assert torch.allclose(permuted, base[:, perm], atol=1e-6)


@pytest.mark.parametrize("position", ["prefix", "suffix"])
def test_token_type_ids_per_segment(data, position):
    texts, tok = data
    prompt, text = PROMPTS[2], texts[0]
    clf = NSPZeroShotClassifier(kexue_nsp_model(tok), tok, [prompt], position=position, max_length=20)
    feat = clf.features([text])[0]
    ids, types = feat["input_ids"], feat["token_type_ids"]
    n_prompt = len(tok.backend(prompt, add_special_tokens=False)["input_ids"])
    first = n_prompt if position == "prefix" else 20 - 3 - n_prompt      # the text is cut, never the prompt
    assert len(ids) == 20 and ids[0] == tok.cls_token_id and ids[first + 1] == tok.sep_token_id
    assert types == [0] * (first + 2) + [1] * (20 - first - 2)
    prompt_ids = tok.backend(prompt, add_special_tokens=False)["input_ids"]
    segment = ids[1:1 + n_prompt] if position == "prefix" else ids[first + 2:first + 2 + n_prompt]
    assert segment == prompt_ids


def test_a_model_without_nsp_head_is_a_clear_error(data):
    texts, tok = data
    clf = NSPZeroShotClassifier(kexue_nsp_model(tok, nsp=False), tok, PROMPTS)
    with pytest.raises(ConfigError, match="next-sentence head"):
        clf.scores(texts[:2])
    with pytest.raises(ConfigError, match="--position"):
        NSPZeroShotClassifier(kexue_nsp_model(tok), tok, PROMPTS, position="middle")


def test_coherent_pairs_score_higher_after_nsp_pretraining(data):
    """A tiny transformers BertForNextSentencePrediction trained 200 steps with its own label convention
    (0 = the second sentence follows). Documents are two "topics", each a set of 12 real characters of the
    sentiment texts; a coherent pair takes both sentences from one topic, a shuffled pair from two. Scored through
    the classifier (each first sentence against 40 candidate continuations as label prompts, suffix position),
    the coherent pairs get the higher p(IsNext); a swapped IsNext index would reverse this."""
    from transformers import BertConfig, BertForNextSentencePrediction

    texts, tok = data
    chars = sorted({c for t in texts for c in t if "\u4e00" <= c <= "\u9fff"})
    topics = [chars[i * 12:(i + 1) * 12] for i in range(2)]
    rng = random.Random(0)

    def sentence(k):
        return "".join(rng.choice(topics[k]) for _ in range(8))

    torch.manual_seed(0)
    model = BertForNextSentencePrediction(BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(200):                                  # robust over seeds 0-3; 100 steps are not
        ks = [rng.randrange(2) for _ in range(32)]
        kb = [k if i % 2 else 1 - k for i, k in enumerate(ks)]
        y = torch.tensor([0 if i % 2 else 1 for i in range(32)])
        enc = tok.backend([sentence(k) for k in ks], [sentence(k) for k in kb], padding=True, return_tensors="pt")
        loss = model(**enc, labels=y).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    topic_of = [i % 2 for i in range(40)]
    firsts = [sentence(k) for k in topic_of]
    seconds = [sentence(k) for k in topic_of]
    clf = NSPZeroShotClassifier(model, tok, seconds, position="suffix", max_length=32, batch_size=200)
    p = clf.scores(firsts).exp()                                          # [40, 40] p(IsNext)
    same = torch.tensor(topic_of)[:, None] == torch.tensor(topic_of)[None, :]
    assert p[same].mean() > p[~same].mean() + 0.3
    with torch.no_grad():
        enc = tok.backend(firsts, seconds, padding=True, return_tensors="pt")
        hf = model(**enc).logits.softmax(-1)[:, 0]
    assert torch.allclose(p.diagonal(), hf, atol=1e-5)
