"""UniLM seq2seq (spec §4 properties, arch §14.5): mask values of encoded pairs, causality, source-blind loss,
the tied MLM head added to a head-less checkpoint."""

import torch
import torch.nn.functional as F

from kexue.models import Transformer, TransformerConfig
from kexue.nn.masks import build_attention_mask
from kexue.tasks.seq2seq import Seq2SeqLM, ensure_mlm_head, seq2seq_loss
from kexue.tasks.seq2seq_data import Seq2SeqCollator, encode_pair, target_labels

CLS, SEP, PAD = 2, 3, 0


class _Tok:
    pad_token_id = PAD


def tiny_model(seed=0, family="bert"):
    torch.manual_seed(seed)
    cfg = TransformerConfig(family=family, vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0, mlm=True)
    return Seq2SeqLM(Transformer(cfg).eval(), _Tok())


def batch_of(pairs):
    feats = [encode_pair(s, t, CLS, SEP, 16, 16) for s, t in pairs]
    return Seq2SeqCollator(PAD)(feats)


def test_encoded_pair_and_spec_mask_rows():
    enc = encode_pair([10, 11], [12, 13], CLS, SEP, 8, 8)
    assert enc["input_ids"] == [CLS, 10, 11, SEP, 12, 13, SEP]
    assert enc["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]
    # the spec's example: segment ids [0,0,0,1,1,1]
    ex = encode_pair([10], [12, 13], CLS, SEP, 8, 8)
    assert ex["token_type_ids"] == [0, 0, 0, 1, 1, 1]
    m = build_attention_mask("unilm", None, torch.tensor([ex["token_type_ids"]]), 6)[0, 0].int().tolist()
    assert m[:3] == [[1, 1, 1, 0, 0, 0]] * 3
    assert m[3] == [1, 1, 1, 1, 0, 0]
    assert m[4] == [1, 1, 1, 1, 1, 0]
    assert m[5] == [1, 1, 1, 1, 1, 1]
    # truncation keeps the closing [SEP] of each side
    cut = encode_pair([10, 11, 12], [13, 14, 15], CLS, SEP, 2, 1)
    assert cut["input_ids"] == [CLS, 10, 11, SEP, 13, SEP]


def test_labels_are_next_target_tokens_only():
    b = batch_of([([10, 11], [12, 13]), ([10], [14])])
    labels = target_labels(b["input_ids"], b["token_type_ids"], b["attention_mask"])
    # row 0: [CLS] 10 11 [SEP] 12 13 [SEP] -> the source [SEP] (position 3) predicts 12
    assert labels[0].tolist() == [-100, -100, -100, 12, 13, SEP]
    # row 1: [CLS] 10 [SEP] 14 [SEP] pad pad -> position 2 predicts 14, 14 predicts [SEP]; padding ignored
    assert labels[1].tolist() == [-100, -100, 14, SEP, -100, -100]


def test_causality_later_target_token_leaves_earlier_logits():
    model = tiny_model()
    a = batch_of([([10, 11, 12], [13, 14, 15, 16])])
    b = {k: v.clone() for k, v in a.items()}
    b["input_ids"][0, 7] = 30  # the third target token
    with torch.no_grad():
        la, lb = model(a["input_ids"], a["token_type_ids"]), model(b["input_ids"], b["token_type_ids"])
    torch.testing.assert_close(la[0, :7], lb[0, :7], rtol=0, atol=1e-6)
    assert not torch.allclose(la[0, 7:], lb[0, 7:])
    # changing a source token changes every position, the target included
    c = {k: v.clone() for k, v in a.items()}
    c["input_ids"][0, 1] = 31
    with torch.no_grad():
        lc = model(c["input_ids"], c["token_type_ids"])
    assert all(not torch.allclose(la[0, i], lc[0, i]) for i in range(la.shape[1]))


def test_source_states_independent_of_target():
    model = tiny_model(family="roformer")
    a = batch_of([([10, 11, 12], [13, 14])])
    b = batch_of([([10, 11, 12], [20, 21, 22, 23])])
    with torch.no_grad():
        ha = model.backbone(a["input_ids"], None, a["token_type_ids"], mask_kind="unilm").last_hidden_state
        hb = model.backbone(b["input_ids"], None, b["token_type_ids"], mask_kind="unilm").last_hidden_state
        src_only = batch_of([([10, 11, 12], [])])
        hs = model.backbone(src_only["input_ids"][:, :5], None, src_only["token_type_ids"][:, :5],
                            mask_kind="unilm").last_hidden_state
    torch.testing.assert_close(ha[0, :5], hb[0, :5], rtol=0, atol=1e-5)
    torch.testing.assert_close(ha[0, :5], hs[0], rtol=0, atol=1e-5)


def test_loss_is_target_ce_and_ignores_source_and_padding():
    g = torch.Generator().manual_seed(0)
    b = batch_of([([10, 11], [12, 13]), ([10], [14])])
    logits = torch.randn(2, b["input_ids"].shape[1], 40, generator=g)
    # hand transcription: CE at positions predicting 12, 13, SEP (row 0) and 14, SEP (row 1)
    terms = [(0, 3, 12), (0, 4, 13), (0, 5, SEP), (1, 2, 14), (1, 3, SEP)]
    expected = torch.stack([F.cross_entropy(logits[r, p][None], torch.tensor([t])) for r, p, t in terms]).mean()
    torch.testing.assert_close(seq2seq_loss(logits, b), expected)
    # editing logits at source positions (the rows predicting source tokens) and at padding changes nothing
    edited = logits.clone()
    edited[0, :3] += 5.0
    edited[1, :2] -= 3.0
    edited[1, 4:] = 100.0
    edited[0, 6] = 100.0  # the last position predicts nothing
    torch.testing.assert_close(seq2seq_loss(edited, b), expected)
    # editing the source tokens' labels (ids) changes nothing either: only targets are read
    b2 = {k: v.clone() for k, v in b.items()}
    b2["input_ids"][0, 1] = 33
    torch.testing.assert_close(seq2seq_loss(logits, b2), expected)
    # sparse softmax with k >= V is the same loss
    torch.testing.assert_close(seq2seq_loss(logits, b, "sparse-softmax", 40), expected)


def test_head_added_to_headless_checkpoint_is_tied():
    torch.manual_seed(0)
    cfg = TransformerConfig(family="bert", vocab_size=40, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                            intermediate_size=64, max_position_embeddings=64)
    bare = Transformer(cfg)
    messages = []
    model = ensure_mlm_head(bare, messages.append)
    assert model.mlm_head is not None and "no MLM head" in messages[0]
    for name, tensor in bare.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor, rtol=0, atol=0)
    assert ensure_mlm_head(model, messages.append) is model and len(messages) == 1
    # tied: a change of the word embeddings changes the logits by the decoder product
    ids = torch.tensor([[CLS, 10, SEP, 12, SEP]])
    types = torch.tensor([[0, 0, 0, 1, 1]])
    with torch.no_grad():
        out = model(ids, token_type_ids=types, mask_kind="unilm")
        h = model.mlm_head.norm(F.gelu(model.mlm_head.dense(out.last_hidden_state)))
        expected = h @ model.embeddings.word_embeddings.weight.T + model.mlm_head.bias
    torch.testing.assert_close(out.mlm_logits, expected, rtol=1e-5, atol=1e-5)


def test_padding_changes_nothing():
    model = tiny_model(family="roformer")
    alone = batch_of([([10, 11], [12, 13])])
    padded = batch_of([([10, 11], [12, 13]), ([10, 11, 12, 14, 15], [16, 17, 18, 19])])
    with torch.no_grad():
        la = model(alone["input_ids"], alone["token_type_ids"], alone["attention_mask"])
        lp = model(padded["input_ids"], padded["token_type_ids"], padded["attention_mask"])
    n = alone["input_ids"].shape[1]
    torch.testing.assert_close(la[0], lp[0, :n], rtol=0, atol=1e-5)
    # the loss of the first row alone equals the padded batch's loss restricted to that row
    first = {k: v[:1] for k, v in padded.items()}
    torch.testing.assert_close(seq2seq_loss(lp[:1], first), seq2seq_loss(la, alone), rtol=0, atol=1e-5)
