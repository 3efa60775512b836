"""Whole-word MLM masking: words masked whole, 80/10/10, 15% of words, specials never, loss on chosen only."""

from __future__ import annotations

import pytest
import torch

from kexue.data.masking import (IGNORE_INDEX, MaskingConfig, align_words, pad_word_ids, segment_words,
                                whole_word_mask)
from kexue.data.tokenization import Tokenizer
from kexue.errors import ConfigError

MASK, CLS, SEP, PAD = 4, 2, 3, 0
SPECIALS = (0, 1, 2, 3, 4)
VOCAB = 30000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mask(ids, words, seed=0, **cfg):
    return whole_word_mask(ids, words, mask_token_id=MASK, vocab_size=VOCAB, generator=gen(seed),
                           config=MaskingConfig(**cfg), special_ids=SPECIALS)


def synthetic(rows: int, words_per_row: int, word_len: int, seed: int = 0):
    """``[CLS] w0 w0 w1 w1 ... [SEP] [PAD] [PAD]``: ``word_len`` tokens per word."""
    g = gen(seed + 100)
    n = words_per_row * word_len
    ids = torch.full((rows, n + 4), PAD)
    words = torch.full((rows, n + 4), -1)
    ids[:, 0], ids[:, n + 1] = CLS, SEP
    ids[:, 1:n + 1] = torch.randint(5, VOCAB, (rows, n), generator=g)
    words[:, 1:n + 1] = torch.arange(n) // word_len
    return ids, words


# ---------------------------------------------------------------------- words from jieba, characters as tokens
@pytest.fixture(scope="module")
def char_tokenizer(kexue_data):
    lines = (kexue_data / "zh_raw_sentences" / "zhwiki_bert_sampled.txt").read_text(encoding="utf-8")
    texts = [t for t in lines.splitlines()[:400] if t.strip()]
    return Tokenizer.train_new(texts + ["我们可以无损放大一个模型"], kind="char", vocab_size=3000), texts


def test_jieba_words_align_to_characters(char_tokenizer):
    tok, _ = char_tokenizer
    text = "我们可以无损放大一个模型"
    spans = segment_words(text)
    assert [text[s:e] for s, e in spans] == ["我们", "可以", "无损", "放大", "一个", "模型"]
    enc = tok(text, return_offsets=True)
    assert len(enc["input_ids"][0]) == len(text) + 2       # one token per character plus [CLS], [SEP]
    assert align_words(enc["offsets"][0], spans) == [-1, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, -1]


def test_align_words_skips_whitespace_and_numbers_words_in_order():
    text = "ab  中国"
    spans = segment_words(text)
    assert [text[s:e] for s, e in spans] == ["ab", "中国"]
    offsets = [(0, 0), (0, 2), (4, 5), (5, 6), (0, 0)]      # "ab" as one piece, then two characters
    assert align_words(offsets, spans) == [-1, 0, 1, 1, -1]
    assert pad_word_ids([[0, 1], [0]]).tolist() == [[0, 1], [0, -1]]


def test_real_text_whole_words_never_partly_masked(char_tokenizer):
    tok, texts = char_tokenizer
    enc = tok(texts[:64], max_length=64, return_offsets=True)
    rows = [align_words(off, segment_words(t)) for off, t in zip(enc["offsets"], texts[:64])]
    length = max(map(len, rows))
    ids = torch.full((len(rows), length), tok.pad_token_id)
    for i, r in enumerate(enc["input_ids"]):
        ids[i, :len(r)] = torch.tensor(r)
    words = pad_word_ids(rows, length)
    assert (words.max(1).values >= 1).all() and (words >= 0).sum() > (ids != tok.pad_token_id).sum() * 0.9
    multi = 0
    for seed in range(20):
        for decide in ("word", "token"):
            masked, labels = whole_word_mask(ids, words, mask_token_id=tok.mask_token_id,
                                             vocab_size=tok.vocab_size, generator=gen(seed),
                                             config=MaskingConfig(decide=decide), special_ids=SPECIALS)
            for b in range(len(rows)):
                for w in range(int(words[b].max()) + 1):
                    pos = words[b] == w
                    target = labels[b][pos] != IGNORE_INDEX
                    assert target.all() or not target.any()        # all tokens of a word or none
                    if decide == "word" and target.all():
                        is_mask = masked[b][pos] == tok.mask_token_id
                        assert is_mask.all() or not is_mask.any()  # one decision for the whole word
                        multi += int(pos.sum() > 1)
    assert multi > 100  # multi-character words were actually chosen and checked


# ---------------------------------------------------------------------- rates
@pytest.mark.parametrize("decide,word_len", [("word", 1), ("word", 2), ("token", 1), ("token", 3)])
def test_80_10_10_within_one_percent_over_1e5_draws(decide, word_len):
    ids, words = synthetic(rows=1000, words_per_row=100 // word_len, word_len=word_len)
    masked, labels = mask(ids, words, seed=7, word_probability=1.0, decide=decide)
    chosen = labels != IGNORE_INDEX
    n = int(chosen.sum())
    assert n >= 99_000
    as_mask = (masked[chosen] == MASK).double().mean().item()
    kept = (masked[chosen] == ids[chosen]).double().mean().item()
    random = 1.0 - as_mask - kept
    print(f"{decide}, {word_len}-token words, {n} targets: mask {as_mask:.4f} kept {kept:.4f} random {random:.4f}")
    assert abs(as_mask - 0.8) < 0.01 and abs(kept - 0.1) < 0.01 and abs(random - 0.1) < 0.01
    replaced = masked[chosen & (masked != ids) & (masked != MASK)]
    assert replaced.numel() > 0 and not torch.isin(replaced, torch.tensor(SPECIALS)).any()


@pytest.mark.parametrize("words_per_row", [3, 37])
def test_fifteen_percent_of_words(words_per_row):
    rows = 60_000 // words_per_row                        # enough words for a 0.005 tolerance (> 4 sigma)
    ids, words = synthetic(rows=rows, words_per_row=words_per_row, word_len=2)
    _, labels = mask(ids, words, seed=3)
    chosen_words = (labels != IGNORE_INDEX).sum(1) / 2                    # two tokens per word
    frac = chosen_words.sum().item() / (rows * words_per_row)
    print(f"{words_per_row} words per row: {frac:.4f} of words chosen")
    assert abs(frac - 0.15) < 0.005
    expect = 0.15 * words_per_row
    assert ((chosen_words - expect).abs() < 1).all()                     # per row never a word off


def test_custom_rates():
    ids, words = synthetic(rows=1000, words_per_row=100, word_len=1)
    masked, labels = mask(ids, words, seed=1, word_probability=0.5, mask_ratio=0.0, random_ratio=1.0)
    chosen = labels != IGNORE_INDEX
    assert abs(chosen.sum().item() / 1e5 - 0.5) < 0.005
    assert (masked[chosen] != MASK).all()
    assert (masked[chosen] != ids[chosen]).double().mean() > 0.99        # (random may hit the original id)


# ---------------------------------------------------------------------- what is never masked, where the loss is
def test_specials_and_padding_never_masked_and_loss_only_on_chosen():
    ids, words = synthetic(rows=200, words_per_row=10, word_len=2)
    ids[:5, 5] = 1                                        # an [UNK]-like special id inside a word
    masked, labels = mask(ids, words, seed=5, word_probability=1.0)
    specials = torch.isin(ids, torch.tensor(SPECIALS))
    assert (labels[specials] == IGNORE_INDEX).all()
    assert torch.equal(masked[specials], ids[specials])
    assert (labels[words == -1] == IGNORE_INDEX).all()
    chosen = labels != IGNORE_INDEX
    assert torch.equal(chosen, ~specials & (words >= 0))  # p = 1: every other token chosen
    assert torch.equal(labels[chosen], ids[chosen])       # labels are the original ids
    _, labels15 = mask(ids, words, seed=6)
    m15, _ = mask(ids, words, seed=6)
    changed = m15 != ids
    assert (labels15[changed] != IGNORE_INDEX).all()      # every changed token is a loss position
    assert (labels15 != IGNORE_INDEX).sum() > changed.sum()  # ... and kept ones are too


def test_input_untouched_and_generator_drives_the_draws():
    ids, words = synthetic(rows=50, words_per_row=20, word_len=2)
    before = ids.clone()
    a = mask(ids, words, seed=11)
    b = mask(ids, words, seed=11)
    c = mask(ids, words, seed=12)                         # next epoch: a different mask (dynamic masking)
    assert torch.equal(ids, before)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_bad_options_name_the_flag():
    with pytest.raises(ConfigError, match="--mlm-probability"):
        MaskingConfig(word_probability=1.5)
    with pytest.raises(ConfigError, match="--mask-ratio"):
        MaskingConfig(mask_ratio=0.95, random_ratio=0.1)
    with pytest.raises(ConfigError, match="--mask-decide"):
        MaskingConfig(decide="span")
    with pytest.raises(ConfigError, match="seq_len"):
        whole_word_mask(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long),
                        mask_token_id=MASK, vocab_size=10, generator=gen())
