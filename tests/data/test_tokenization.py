"""kexue's Tokenizer gives BertTokenizerFast's ids on 1,000 real English and Chinese sentences, with offsets."""

from __future__ import annotations

from transformers import BertTokenizerFast

from kexue.data.tokenization import Tokenizer
from kexue.models import resolve_model_path


def _english(root, n: int = 1000) -> list[str]:
    lines = (root / "stsb_en" / "stsbenchmark.tsv").read_text(encoding="utf-8").splitlines()
    col = lines[0].split("\t").index("sentence2")
    return [line.split("\t")[col] for line in lines[1:n + 1]]


def _chinese(root, n: int = 1000) -> list[str]:
    out: list[str] = []
    for line in (root / "stsb_zh" / "STS-B.train.data").read_text(encoding="utf-8").splitlines():
        out.extend(line.split("\t")[:2])
        if len(out) >= n:
            break
    return out[:n]


def test_english_ids_equal_bert_tokenizer_fast(kexue_data):
    texts = _english(kexue_data)
    assert len(texts) == 1000
    ours = Tokenizer.from_pretrained("minilm")
    ref = BertTokenizerFast(vocab=str(resolve_model_path("minilm") / "vocab.txt"), do_lower_case=True)
    a = ours(texts, max_length=128)
    b = ref(texts, max_length=128, truncation=True)
    assert a["input_ids"] == b["input_ids"]
    assert a["token_type_ids"] == b["token_type_ids"] and a["attention_mask"] == b["attention_mask"]
    pairs = ours(texts[:20], texts[20:40])
    assert pairs["input_ids"] == ref(texts[:20], texts[20:40])["input_ids"]
    assert all(set(t) == {0, 1} for t in pairs["token_type_ids"])


def test_offsets_point_into_the_text():
    tok = Tokenizer.from_pretrained("minilm")
    text = "A man is playing a flute."
    enc = tok([text], return_offsets=True)
    tokens = tok.convert_ids_to_tokens(enc["input_ids"][0])
    offsets = enc["offsets"][0]
    assert offsets[0] == (0, 0) and offsets[-1] == (0, 0) and tokens[0] == "[CLS]"
    for token, (s, e) in zip(tokens[1:-1], offsets[1:-1]):
        assert text[s:e].lower() == token.removeprefix("##")
    assert tok.decode(enc["input_ids"][0]) == text.lower()


def test_chinese_trained_vocab_reloaded_by_bert_tokenizer_fast(kexue_data, tmp_path):
    texts = _chinese(kexue_data)
    assert len(texts) == 1000
    for kind, size in (("char", 30000), ("wordpiece", 3000)):
        ours = Tokenizer.train_new(texts, kind=kind, vocab_size=size, lowercase=True)
        ours.save_pretrained(tmp_path / kind)
        ref = BertTokenizerFast(vocab=str(tmp_path / kind / "vocab.txt"), do_lower_case=True)
        a = ours(texts)["input_ids"]
        assert a == ref(texts)["input_ids"]
        assert ours.unk_token_id not in {i for row in a for i in row}
        reloaded = Tokenizer.from_pretrained(tmp_path / kind)
        assert reloaded(texts[:50])["input_ids"] == a[:50]
    char = Tokenizer.train_new(texts, kind="char", vocab_size=30000)
    sample = texts[0][:6]  # 一架飞机要起
    enc = char([sample], return_offsets=True)
    assert len(enc["input_ids"][0]) == 8  # every CJK character is its own token
    assert enc["offsets"][0][1:-1] == [(i, i + 1) for i in range(6)]
    assert char.convert_ids_to_tokens(enc["input_ids"][0][1:-1]) == list(sample)


def test_train_new_gives_the_same_ids_every_time(kexue_data):
    """The tokenizers trainer numbers equally frequent tokens in hash-map order; train_new must not (a resumed or
    repeated run would otherwise see a different vocabulary)."""
    text = (kexue_data / "zh_raw_sentences" / "zhwiki_bert_sampled.txt").read_text(encoding="utf-8")
    texts = [s for s in text.split("\n") if s.strip()][:400]
    vocabs = [Tokenizer.train_new(texts, kind="char", vocab_size=3000).backend.get_vocab() for _ in range(3)]
    assert vocabs[0] == vocabs[1] == vocabs[2]
    ordered = sorted(vocabs[0], key=vocabs[0].get)
    assert ordered[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and ordered[5:] == sorted(ordered[5:])
