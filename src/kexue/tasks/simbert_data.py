"""SimBERT training data: similar-sentence pairs, each pair twice in a batch, with optional BART-style noise.

Pairs (``--data``, comma-separated names are concatenated):

* ``simclue_sample`` — ``train_pair_postive_1w.json`` (``{"query", "title"}``, 10,000 positive pairs). Its
  ``test_public`` holds all of LCQMC test (SOURCE.md): never evaluate on LCQMC after training on it;
* ``afqmc`` — the training pairs labelled 1; ``stsb_zh`` — the training pairs scored ``>= 4``;
* a file of your own: ``a \\t b`` lines or JSON lines ``{"source", "target"}``
  (:func:`kexue.data.readers.seq2seq.read_seq2seq`).

A batch of ``n`` pairs becomes ``2n`` rows ``[CLS] A [SEP] B [SEP]`` (row ``2i``) and ``[CLS] B [SEP] A [SEP]``
(row ``2i + 1``), segment ids 0 / 1 (:func:`kexue.tasks.seq2seq_data.encode_pair`). RoFormer-Sim's noise (v2):
with probability ``noise_probability`` (0.5) a row's *source* gets whole-word masking over jieba words (15% of
the words, 80/10/10; :func:`kexue.data.masking.whole_word_mask`); the target is the clean paraphrase.

Sources: https://kexue.fm/archives/7427, https://kexue.fm/archives/8454; spec §4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from kexue.data.collate import pad_batch
from kexue.data.masking import MaskingConfig, align_words, segment_words, whole_word_mask
from kexue.data.readers.pairs import read_pair_jsonl
from kexue.data.readers.seq2seq import read_seq2seq
from kexue.data.registry import data_root, load_pairs
from kexue.data.tokenization import Tokenizer
from kexue.errors import ConfigError
from kexue.tasks.seq2seq_data import encode_pair

PAIR_DATASETS = ("simclue_sample", "afqmc", "stsb_zh")
STSB_MIN_SCORE = 4


def load_similar_pairs(data: str) -> list[tuple[str, str]]:
    """Similar-sentence pairs ``(a, b)`` of ``data`` (see the module list; names joined by commas are concatenated).

    Raises:
        ConfigError: an unknown name that is no file. DataFormatError: a malformed line.
    """
    pairs: list[tuple[str, str]] = []
    for name in (n.strip() for n in data.split(",") if n.strip()):
        if name == "simclue_sample":
            path = data_root() / name / "train_pair_postive_1w.json"
            pairs += [(p.text_a, p.text_b) for p in read_pair_jsonl(path, text_keys=("query", "title"))]
        elif name == "afqmc":
            pairs += [(p.text_a, p.text_b) for p in load_pairs(name, "train") if p.label == 1]
        elif name == "stsb_zh":
            pairs += [(p.text_a, p.text_b) for p in load_pairs(name, "train") if p.label >= STSB_MIN_SCORE]
        elif Path(name).expanduser().is_file():
            pairs += [(e.source, e.target) for e in read_seq2seq(Path(name).expanduser())]
        else:
            raise ConfigError(f"--data {name}: expected one of {', '.join(PAIR_DATASETS)} or a file of "
                              f"'a<TAB>b' lines / JSON lines {{source, target}}")
    if not pairs:
        raise ConfigError(f"--data {data}: no similar pairs found")
    return pairs


@dataclass(frozen=True)
class EncodedSentence:
    """One sentence: content token ids (no special tokens, truncated), the jieba word id of each token, and the
    sentence's index in the run's sentence list (for precomputed teacher vectors)."""

    ids: tuple[int, ...]
    words: tuple[int, ...]
    index: int


def encode_sentences(tokenizer: Tokenizer, texts: Sequence[str], max_length: int) -> list[EncodedSentence]:
    """:class:`EncodedSentence` of each text, ``max_length`` content tokens kept, words from jieba.

    Raises:
        ConfigError: ``max_length < 1`` (``--max-length``).
    """
    if max_length < 1:
        raise ConfigError(f"--max-length: expected an integer >= 1, got {max_length}")
    if not texts:
        return []
    enc = tokenizer(list(texts), truncation=False, return_offsets=True)
    out = []
    for i, (text, ids, offsets) in enumerate(zip(texts, enc["input_ids"], enc["offsets"])):
        words = align_words(offsets, segment_words(text))
        out.append(EncodedSentence(tuple(ids[1:-1][:max_length]), tuple(words[1:-1][:max_length]), i))
    return out


class SimBERTCollator:
    """``n`` pairs of :class:`EncodedSentence` -> a padded batch of ``2n`` rows (A→B, B→A adjacent).

    Returns ``{"input_ids", "token_type_ids", "attention_mask", "source_index"}`` (``[2n, L]`` long; the last
    ``[2n]``: the sentence index of each row's source). With ``noise_probability > 0`` each row's source is
    corrupted with that probability by whole-word masking (``masking``), drawn from ``generator``.

    Raises:
        ConfigError: ``noise_probability`` outside ``[0, 1]`` (``--noise-probability``).
    """

    def __init__(self, tokenizer: Tokenizer, noise_probability: float = 0.0, masking: MaskingConfig = MaskingConfig(),
                 generator: torch.Generator | None = None) -> None:
        if not 0.0 <= noise_probability <= 1.0:
            raise ConfigError(f"--noise-probability: expected a value in [0, 1], got {noise_probability}")
        self.tokenizer = tokenizer
        self.noise_probability = noise_probability
        self.masking = masking
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.special_ids = sorted({tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id,
                                   tokenizer.mask_token_id, tokenizer.unk_token_id})

    def _noised(self, sentence: EncodedSentence) -> list[int]:
        ids = list(sentence.ids)
        if not ids or self.noise_probability == 0.0:
            return ids
        if float(torch.rand((), generator=self.generator)) >= self.noise_probability:
            return ids
        masked, _ = whole_word_mask(torch.tensor([ids]), torch.tensor([sentence.words]),
                                    mask_token_id=self.tokenizer.mask_token_id,
                                    vocab_size=self.tokenizer.vocab_size, generator=self.generator,
                                    config=self.masking, special_ids=self.special_ids)
        return masked[0].tolist()

    def __call__(self, pairs: Sequence[tuple[EncodedSentence, EncodedSentence]]) -> dict[str, torch.Tensor]:
        """The padded ``2n``-row batch."""
        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        rows, sources = [], []
        for a, b in pairs:
            for src, tgt in ((a, b), (b, a)):
                row = encode_pair(self._noised(src), tgt.ids, cls_id, sep_id, max(len(src.ids), 1),
                                  max(len(tgt.ids), 1))
                rows.append(row)
                sources.append(src.index)
        batch = pad_batch(rows, pad_token_id=self.tokenizer.pad_token_id)
        batch["source_index"] = torch.tensor(sources, dtype=torch.long)
        return batch
