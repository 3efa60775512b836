"""PET (spec §6): pattern positions, joint multi-token scores against brute force, invariances, the loss targets
and the 80/10/10 masking."""

from __future__ import annotations

import math

import pytest
import torch

from kexue.data.masking import IGNORE_INDEX
from kexue.errors import ConfigError
from kexue.models import Transformer, TransformerConfig
from kexue.prompting import ClozePattern, PETClassifier, Verbalizer, cloze_word_scores, mlm_loss, random_token_mask
from _prompt_stubs import FixedProbabilityMLM, InputDependentMLM, char_tokenizer, log, sentiment_texts


@pytest.fixture(scope="module")
def data(kexue_data):
    texts, labels = sentiment_texts(kexue_data)
    return texts, labels, char_tokenizer(texts)


def ids_of(tok, text):
    return tok.backend(text, add_special_tokens=False)["input_ids"]


def test_mask_ids_at_declared_positions(data):
    texts, _, tok = data
    news = ClozePattern("下面报导一则{mask}新闻。{text}").encode(tok, texts[0], [2], max_length=128)
    assert news.mask_positions == [[7, 8]]                       # the article's positions 7-8
    assert [news.input_ids[p] for p in (7, 8)] == [tok.mask_token_id] * 2
    prefix = ClozePattern("{mask}满意。{text}").encode(tok, texts[1], [1])
    assert prefix.mask_positions == [[1]] and prefix.input_ids[1] == tok.mask_token_id
    n = len(ids_of(tok, texts[2]))
    suffix = ClozePattern("{text}{mask}满意。").encode(tok, texts[2], [1])
    assert suffix.mask_positions == [[1 + n]] and suffix.input_ids[1 + n] == tok.mask_token_id
    na = len(ids_of(tok, texts[3]))
    middle = ClozePattern("{text_a}？{mask}，{text_b}").encode(tok, (texts[3], texts[4]), [3])
    assert middle.mask_positions == [[2 + na, 3 + na, 4 + na]]
    assert middle.input_ids[0] == tok.cls_token_id and middle.input_ids[-1] == tok.sep_token_id
    assert middle.input_ids.count(tok.mask_token_id) == 3


def test_only_the_text_is_truncated_and_a_word_that_cannot_fit_raises(data):
    texts, _, tok = data
    pattern = ClozePattern("{mask}满意。{text}")
    enc = pattern.encode(tok, texts[0] * 5, [2], max_length=12)
    assert len(enc.input_ids) == 12 and enc.mask_positions == [[1, 2]]
    assert enc.input_ids[3:5] == ids_of(tok, "满意")
    with pytest.raises(ConfigError, match="--max-length"):
        pattern.encode(tok, texts[0], [8], max_length=12)      # 2 + 8 + 3 = 13 tokens before any text
    with pytest.raises(ConfigError, match="mask"):
        ClozePattern("{text}满意")
    with pytest.raises(ConfigError, match="unknown slot"):
        ClozePattern("{label}{mask}{text}")


def test_two_token_score_is_the_sum_of_the_log_probabilities(data):
    texts, _, tok = data
    v = tok.vocab_size
    a, b = ids_of(tok, "体育")
    probs = torch.full((v,), 0.25 / (v - 2))
    probs[a], probs[b] = 0.5, 0.25
    clf = PETClassifier(FixedProbabilityMLM(probs), tok, ClozePattern("这是{mask}新闻。{text}"),
                        Verbalizer({"sports": ["体育"], "finance": ["财经"]}))
    scores = clf.scores(texts[:3])
    assert torch.allclose(scores[:, 0], torch.full((3,), log(0.5) + log(0.25)), atol=1e-6)
    assert torch.allclose(scores[:, 1], torch.full((3,), 2 * log(0.25 / (v - 2))), atol=1e-5)


def brute_force(model, tok, template, label_words, text, combine):
    """Each word written into the template as literal [MASK] strings, tokenised whole, scored position by position."""
    out = []
    for words in label_words:
        word_scores = []
        for word in words:
            parts = (word,) if isinstance(word, str) else word
            filled = template
            for part in parts:                                     # one slot at a time, left to right
                filled = filled.replace("{mask}", "[MASK]" * len(part), 1)
            ids = tok(filled.replace("{text}", text), max_length=512)["input_ids"][0]
            positions = [i for i, t in enumerate(ids) if t == tok.mask_token_id]
            target = [t for part in parts for t in ids_of(tok, part)]
            logp = model(torch.tensor([ids])).double().log_softmax(-1)[0]
            word_scores.append(sum(logp[p, t].item() for p, t in zip(positions, target, strict=True)))
        if combine == "sum-prob":
            out.append(math.log(sum(math.exp(s) for s in word_scores)))
        else:
            out.append(sum(word_scores) / len(word_scores))
    return out


@pytest.mark.parametrize("combine", ["sum-prob", "mean-log"])
@pytest.mark.parametrize("template,words", [
    ("{mask}满意。{text}", {"pos": ["很", "很好"], "neg": ["不", "差"], "mixed": ["不满意"]}),
    ("{mask}，{text}{mask}。", {"pos": [("很", "好"), ("很好", "满意")], "neg": [("不", "差")]}),
])
def test_multi_token_labels_of_different_lengths_match_brute_force(data, combine, template, words):
    texts, _, tok = data
    model = InputDependentMLM(tok.vocab_size)
    clf = PETClassifier(model, tok, ClozePattern(template), Verbalizer(words, combine=combine), batch_size=4)
    scores = clf.scores(texts[:6])
    expected = torch.tensor([brute_force(model, tok, template, list(words.values()), t, combine) for t in texts[:6]],
                            dtype=torch.float64)
    assert torch.allclose(scores.double(), expected, atol=1e-4)


def test_per_example_candidates_match_brute_force(data):
    """ChID-style: every example has its own candidate words (here of mixed lengths), scored at one blank."""
    texts, _, tok = data
    model = InputDependentMLM(tok.vocab_size)
    pattern = ClozePattern("{text_a}{mask}{text_b}")
    candidates = [["很好", "不满意", "差"], ["体育", "财经", "国际"], ["好", "不好", "很不好"]]
    examples = [(t[:10], t[10:20]) for t in texts[:3]]
    words = [Verbalizer({j: [c] for j, c in enumerate(cands)}).tokenize(tok) for cands in candidates]
    scores = cloze_word_scores(model, tok, pattern, words, examples, batch_size=2, per_example=True)
    for i, ((a, b), cands) in enumerate(zip(examples, candidates)):
        expected = brute_force(model, tok, a + "{mask}" + b, [[c] for c in cands], "", "sum-prob")
        assert torch.allclose(scores[i].double(), torch.tensor(expected, dtype=torch.float64), atol=1e-4)


def test_a_constant_on_a_non_verbalizer_logit_does_not_change_the_prediction(data):
    texts, _, tok = data
    verbalizer = Verbalizer({"neg": ["不"], "pos": ["很"]})
    pattern = ClozePattern("{mask}满意。{text}")
    other = ids_of(tok, "新")[0]
    base = PETClassifier(InputDependentMLM(tok.vocab_size), tok, pattern, verbalizer).scores(texts)
    for c in (-7.0, 40.0):
        bumped = PETClassifier(InputDependentMLM(tok.vocab_size, {other: c}), tok, pattern, verbalizer).scores(texts)
        assert torch.equal(bumped.argmax(-1), base.argmax(-1))
        assert torch.allclose(bumped[:, 1] - bumped[:, 0], base[:, 1] - base[:, 0], atol=1e-4)


def test_positions_without_target_carry_no_loss():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 5, 11, generator=g)
    labels = torch.full((2, 5), IGNORE_INDEX)
    labels[0, 1], labels[1, 3], labels[1, 4] = 4, 7, 0               # id 0 is a real target here
    loss = mlm_loss(logits, labels)
    expected = sum(-logits[b, p].log_softmax(-1)[t] for b, p, t in ((0, 1, 4), (1, 3, 7), (1, 4, 0))) / 3
    assert torch.allclose(loss, expected, atol=1e-6)
    noisy = logits.clone()
    noisy[0, 0] += 100.0
    noisy[1, 2] -= 50.0
    assert torch.equal(mlm_loss(noisy, labels), loss)
    assert mlm_loss(logits, torch.full((2, 5), IGNORE_INDEX)).item() == 0.0


def test_training_features_targets_and_unlabelled_rows(data):
    texts, _, tok = data
    clf = PETClassifier(InputDependentMLM(tok.vocab_size), tok, ClozePattern("{mask}{mask}满意。{text}"),
                        Verbalizer({"neg": [("不", "太")], "pos": [("很", "很")]}))
    feat = clf.training_features(texts[0], 0)
    assert feat["input_ids"][1:3] == [tok.mask_token_id] * 2
    assert feat["labels"][1:3] == ids_of(tok, "不") + ids_of(tok, "太")
    assert all(t == IGNORE_INDEX for i, t in enumerate(feat["labels"]) if i not in (1, 2))
    assert feat["protected"][1:3] == [1, 1] and sum(feat["protected"]) == 2
    plain = clf.training_features(texts[0], None)
    assert plain["input_ids"] == tok(texts[0])["input_ids"][0]        # no pattern at all
    assert set(plain["labels"]) == {IGNORE_INDEX}
    batch = clf.collate([feat, plain])
    ids, labels = clf.mask_batch(batch, torch.Generator().manual_seed(0), probability=0.15)
    assert torch.equal(labels[0, 1:3], torch.tensor(feat["labels"][1:3]))
    assert ids[0, 0] == tok.cls_token_id and (labels[:, 0] == IGNORE_INDEX).all()


def test_random_masking_is_15_percent_and_80_10_10():
    g = torch.Generator().manual_seed(0)
    vocab = 30000
    ids = torch.randint(5, vocab, (240, 3400), generator=g)
    candidates = torch.ones_like(ids, dtype=torch.bool)
    candidates[:, :400] = False                                       # protected tokens
    masked, labels = random_token_mask(ids, candidates, mask_token_id=4, vocab_size=vocab, generator=g,
                                       special_ids=[0, 1, 2, 3])
    chosen = labels != IGNORE_INDEX
    assert not chosen[:, :400].any()
    n = int(chosen.sum())
    assert n > 1e5 and abs(n / candidates.sum().item() - 0.15) < 0.01
    frac_mask = (masked[chosen] == 4).float().mean().item()
    frac_keep = (masked[chosen] == ids[chosen]).float().mean().item()
    frac_random = 1 - frac_mask - frac_keep
    assert abs(frac_mask - 0.8) < 0.01 and abs(frac_keep - 0.1) < 0.01 and abs(frac_random - 0.1) < 0.01
    assert torch.equal(masked[~chosen], ids[~chosen])


@pytest.mark.parametrize("label", [0, 1])
def test_training_moves_the_scores_read_at_the_mask_towards_the_label(data, label):
    """The training target sits where the scorer reads: a few steps on one label (with the 15% masking of the
    other tokens) raise that label's margin on held-out texts until it is predicted for all of them."""
    texts, _, tok = data
    torch.manual_seed(0)
    config = TransformerConfig(family="bert", vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                               hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, mlm=True,
                               pad_token_id=tok.pad_token_id)
    model = Transformer(config).eval()
    clf = PETClassifier(model, tok, ClozePattern("{mask}满意。{text}"), Verbalizer({0: ["不"], 1: ["很"]}),
                        max_length=48)
    held_out = texts[12:24]

    def margin():
        s = clf.scores(held_out)
        return s[:, label] - s[:, 1 - label]

    before = margin()
    batch = clf.collate([clf.training_features(t, label) for t in texts[:8]])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(15):
        loss = clf.loss(model, batch, probability=0.15)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert (margin() > before + 1.0).all()
    assert clf.predict(held_out).tolist() == [label] * len(held_out)
