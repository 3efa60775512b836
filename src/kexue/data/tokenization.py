"""Tokenisation with character offsets on top of Hugging Face's fast (Rust ``tokenizers``) WordPiece tokenizer.

Offsets replace bert4keras' ``tokenizer.rematch`` (spec §14.6): each token's ``(start, end)`` character span in
the original text, ``(0, 0)`` for special tokens. Padding is the collator's job: outputs are unpadded lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from kexue.errors import ConfigError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class Tokenizer:
    """A BERT-style fast tokenizer (wraps ``transformers``' ``BertTokenizerFast`` / ``PreTrainedTokenizerFast``).

    Attributes:
        backend: the wrapped transformers fast tokenizer.
        pad_token_id, cls_token_id, sep_token_id, mask_token_id, unk_token_id, vocab_size.
    """

    def __init__(self, backend: Any) -> None:
        if not getattr(backend, "is_fast", False):
            raise ConfigError(f"Tokenizer needs a fast (tokenizers-backed) tokenizer, got {type(backend).__name__}")
        for name in ("pad_token", "cls_token", "sep_token", "mask_token", "unk_token"):
            if getattr(backend, name, None) is None:
                raise ConfigError(f"tokenizer has no {name} (expected a BERT-style vocabulary with "
                                  f"{', '.join(SPECIAL_TOKENS)})")
        self.backend = backend

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, path_or_alias: str | Path) -> "Tokenizer":
        """Load from a checkpoint folder (tokenizer.json or vocab.txt) or an alias such as ``"minilm"``.

        Raises:
            ConfigError: unknown alias / folder, or a folder without a loadable fast tokenizer.
        """
        from transformers import AutoTokenizer

        from kexue.hub import resolve_model_path

        folder = resolve_model_path(path_or_alias)
        try:
            backend = AutoTokenizer.from_pretrained(str(folder), use_fast=True)
        except (OSError, ValueError, TypeError) as err:
            raise ConfigError(f"{folder}: cannot load a fast tokenizer (tokenizer.json or vocab.txt): {err}") from err
        return cls(backend)

    @classmethod
    def train_new(cls, texts: Iterable[str], kind: str = "char", vocab_size: int = 21128, lowercase: bool = True,
                  min_frequency: int = 1) -> "Tokenizer":
        """Build a new BERT-style vocabulary from ``texts`` with the ``tokenizers`` WordPiece trainer.

        The pipeline is BERT's (BertNormalizer with CJK characters isolated, BertPreTokenizer, WordPiece with
        ``##`` continuations, ``[CLS] A [SEP] B [SEP]`` template), so ``BertTokenizerFast(vocab_file=...)``
        over the saved ``vocab.txt`` gives the same ids.

        Args:
            texts: training sentences.
            kind: ``"char"``: no merges; the vocabulary is the special tokens plus the characters (each CJK
                character its own token), the alphabet capped at the ``vocab_size - 5`` most frequent; non-CJK
                characters inside words also get ``##x`` continuation entries, in addition.
                ``"wordpiece"``: WordPiece merges up to ``vocab_size`` entries.
            vocab_size: vocabulary size (special tokens included) — see ``kind``.
            lowercase: lower-case (and strip accents) in the normaliser.
            min_frequency: minimum count of a merged piece (wordpiece kind).
        The ids are deterministic: special tokens first, then the learned tokens sorted by string (the
        ``tokenizers`` trainer alone numbers equally frequent tokens differently from run to run).
        Raises:
            ConfigError: unknown ``kind`` or ``vocab_size`` smaller than the special tokens.
        """
        from tokenizers import Tokenizer as RustTokenizer
        from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers
        from transformers import PreTrainedTokenizerFast

        if kind not in ("char", "wordpiece"):
            raise ConfigError(f"train_new kind must be 'char' or 'wordpiece', got {kind!r}")
        if vocab_size <= len(SPECIAL_TOKENS):
            raise ConfigError(f"train_new vocab_size must exceed {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}")
        tok = RustTokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
        tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                    strip_accents=None, lowercase=lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        if kind == "char":
            trainer = trainers.WordPieceTrainer(vocab_size=len(SPECIAL_TOKENS), special_tokens=list(SPECIAL_TOKENS),
                                                limit_alphabet=vocab_size - len(SPECIAL_TOKENS),
                                                continuing_subword_prefix="##", show_progress=False)
        else:
            trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                                min_frequency=min_frequency, continuing_subword_prefix="##",
                                                show_progress=False)
        tok.train_from_iterator(list(texts), trainer=trainer)
        # The trainer orders tokens of equal frequency by hash-map iteration, which changes from run to run; renumber
        # so that the same texts always give the same ids (special tokens first, then by string).
        learned = sorted((t for t in tok.get_vocab() if t not in SPECIAL_TOKENS))
        tok.model = models.WordPiece({t: i for i, t in enumerate([*SPECIAL_TOKENS, *learned])}, unk_token="[UNK]",
                                     continuing_subword_prefix="##")
        cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
        backend = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                          cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                          model_input_names=["input_ids", "token_type_ids", "attention_mask"])
        return cls(backend)

    def save_pretrained(self, path: str | Path) -> Path:
        """Write tokenizer.json, vocab.txt and tokenizer_config.json into ``path``; returns the folder."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.backend.save_pretrained(str(folder))
        vocab = self.backend.get_vocab()
        ordered = sorted(vocab.items(), key=lambda kv: kv[1])
        if [i for _, i in ordered] != list(range(len(ordered))):
            raise ConfigError("vocabulary ids are not contiguous; cannot write vocab.txt")
        (folder / "vocab.txt").write_text("".join(t + "\n" for t, _ in ordered), encoding="utf-8")
        return folder

    # ------------------------------------------------------------------ ids
    @property
    def pad_token_id(self) -> int:
        """Id of ``[PAD]``."""
        return self.backend.pad_token_id

    @property
    def cls_token_id(self) -> int:
        """Id of ``[CLS]``."""
        return self.backend.cls_token_id

    @property
    def sep_token_id(self) -> int:
        """Id of ``[SEP]``."""
        return self.backend.sep_token_id

    @property
    def mask_token_id(self) -> int:
        """Id of ``[MASK]``."""
        return self.backend.mask_token_id

    @property
    def unk_token_id(self) -> int:
        """Id of ``[UNK]``."""
        return self.backend.unk_token_id

    @property
    def vocab_size(self) -> int:
        """Number of tokens in the vocabulary (added tokens included)."""
        return len(self.backend)

    def __len__(self) -> int:
        return self.vocab_size

    def __call__(self, texts: str | Sequence[str], text_pairs: str | Sequence[str] | None = None,
                 max_length: int = 512, truncation: bool = True, return_offsets: bool = False) -> dict[str, list]:
        """Tokenise a batch (a single string counts as a batch of one).

        Args:
            texts: sentences; text_pairs: optional second segments (same count), token_type 1.
            max_length: maximum tokens including ``[CLS]``/``[SEP]`` (truncation ``longest_first``).
            truncation: truncate to ``max_length``; without it longer inputs stay whole.
            return_offsets: add ``offsets``: per token ``(start, end)`` character span in its own text
                (``texts`` or ``text_pairs``), ``(0, 0)`` for special tokens.
        Returns:
            dict of lists of lists (no padding): ``input_ids``, ``token_type_ids``, ``attention_mask``
            (and ``offsets``).
        Raises:
            ConfigError: ``text_pairs`` of a different length than ``texts``.
        """
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(text_pairs, str):
            text_pairs = [text_pairs]
        texts = list(texts)
        if text_pairs is not None:
            text_pairs = list(text_pairs)
            if len(text_pairs) != len(texts):
                raise ConfigError(f"text_pairs has {len(text_pairs)} items, texts has {len(texts)}")
        enc = self.backend(texts, text_pairs, max_length=max_length if truncation else None,
                           truncation=bool(truncation), padding=False, return_offsets_mapping=return_offsets,
                           return_token_type_ids=True, return_attention_mask=True)
        out = {"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
               "attention_mask": enc["attention_mask"]}
        if return_offsets:
            out["offsets"] = [[tuple(o) for o in row] for row in enc["offset_mapping"]]
        return out

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        """Token strings of ``ids``."""
        return self.backend.convert_ids_to_tokens(list(ids))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids`` (WordPiece ``##`` joined; CJK characters joined with spaces as transformers does)."""
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)
