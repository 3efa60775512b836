"""Packing sentences into MLM examples (word ids across sentences) and the RoFormerV2 residual warm-up α."""

from __future__ import annotations

import pytest
import torch

from kexue.data.masking import IGNORE_INDEX, pad_word_ids, segment_words, whole_word_mask
from kexue.data.tokenization import Tokenizer
from kexue.errors import ConfigError
from kexue.models import Transformer, TransformerConfig
from kexue.tasks.pretrain import pack_documents, residual_alpha


@pytest.fixture(scope="module")
def docs_and_tokenizer(kexue_data):
    text = (kexue_data / "zh_raw_sentences" / "zhwiki_bert_sampled.txt").read_text(encoding="utf-8")
    docs = [block.split("\n") for block in text.split("\n\n")[:40]]
    docs = [[s for s in d if s.strip()] for d in docs]
    tok = Tokenizer.train_new([s for d in docs for s in d], kind="char", vocab_size=4000)
    return docs, tok


def test_packing_keeps_every_token_in_order_within_documents(docs_and_tokenizer):
    docs, tok = docs_and_tokenizer
    examples = pack_documents(docs, tok, max_length=64)
    assert all(len(e.input_ids) <= 64 and len(e.input_ids) == len(e.word_ids) for e in examples)
    assert all(e.input_ids[0] == tok.cls_token_id and e.input_ids[-1] == tok.sep_token_id for e in examples)
    for d, doc in enumerate(docs):
        if not doc:
            continue
        expect = [i for s in doc for i in tok.backend(s, add_special_tokens=False)["input_ids"]]
        got = [i for e in examples if e.document == d for i in e.input_ids[1:-1]]
        assert got == expect                              # nothing lost, nothing crosses a document
    full = sum(len(e.input_ids) for e in examples) / len(examples)
    assert full > 40                                      # packed, not one sentence per example


def test_word_ids_follow_jieba_across_packed_sentences(docs_and_tokenizer):
    _, tok = docs_and_tokenizer
    doc = ["我们可以无损放大一个模型。", "模型很大。"]
    (ex,) = pack_documents([doc], tok, max_length=64)
    # 我们/可以/无损/放大/一个/模型/。 then 模型/很大/。 -> numbered on across the sentence boundary
    assert [text for s in doc for text in (s[a:b] for a, b in segment_words(s))] == [
        "我们", "可以", "无损", "放大", "一个", "模型", "。", "模型", "很大", "。"]
    assert ex.word_ids == [-1, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 7, 7, 8, 8, 9, -1]


def test_long_sentence_is_cut_and_packed_examples_mask_whole_words(docs_and_tokenizer):
    docs, tok = docs_and_tokenizer
    examples = pack_documents([["很长的句子" * 20]], tok, max_length=16)
    assert [len(e.input_ids) for e in examples] == [16] * 7 + [2 + 100 - 7 * 14]
    for e in examples:
        real = [w for w in e.word_ids if w >= 0]
        assert real == sorted(real) and real[0] == 0
    batch = pack_documents(docs[:8], tok, max_length=64)
    length = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), length), tok.pad_token_id)
    for i, e in enumerate(batch):
        ids[i, :len(e.input_ids)] = torch.tensor(e.input_ids)
    words = pad_word_ids([e.word_ids for e in batch], length)
    masked, labels = whole_word_mask(ids, words, mask_token_id=tok.mask_token_id, vocab_size=tok.vocab_size,
                                     generator=torch.Generator().manual_seed(0))
    assert ((labels != IGNORE_INDEX) & (words == -1)).sum() == 0 and (labels != IGNORE_INDEX).any()


def test_max_length_checked():
    with pytest.raises(ConfigError, match="--max-length"):
        pack_documents([["好"]], tokenizer=None, max_length=2)


def test_residual_alpha_schedule_and_alpha_zero_blocks_are_the_norm():
    assert [residual_alpha(s, 4) for s in (0, 1, 2, 4, 9)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert residual_alpha(0, 0) == 1.0
    with pytest.raises(ConfigError, match="--alpha-warmup-steps"):
        residual_alpha(-1, 10)
    cfg = TransformerConfig(family="roformer_v2", vocab_size=50, hidden_size=16, num_hidden_layers=3,
                            num_attention_heads=2, intermediate_size=32, hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0, pooler=False)
    model = Transformer(cfg).eval()
    model.residual_alpha = residual_alpha(0, 100)
    ids = torch.randint(1, 50, (2, 7))
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
    emb = out.hidden_states[0]
    for h in out.hidden_states[1:]:                       # α = 0: every block is Norm(x), idempotent
        assert torch.allclose(h, emb, atol=1e-5)
