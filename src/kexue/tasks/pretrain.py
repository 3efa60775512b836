"""MLM pretraining recipe, first parts: sentence packing with word ids, and the RoFormerV2 residual warm-up α.

Groundwork for ``kexue pretrain`` (issue 10; RoFormerV2, https://kexue.fm/archives/8998): the training loop
(Trainer, optimizer, NSP/SOP) is not here yet. Masking itself is :func:`kexue.data.masking.whole_word_mask`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kexue.data.masking import align_words, segment_words
from kexue.errors import ConfigError


@dataclass
class PackedExample:
    """One packed MLM example: ``[CLS] s1 s2 ... [SEP]`` with the whole-word index of every token.

    Attributes:
        input_ids: token ids, length <= ``max_length``.
        word_ids: word index per token (``0, 1, ...`` across the packed sentences), ``-1`` at ``[CLS]``/``[SEP]``
            and at tokens outside every jieba word.
        document: index of the source document (examples never cross documents).
        starts: position (in ``input_ids``) of the first token of every sentence (or sentence piece) packed into
            the example, ascending, the first one 1; the places where a next-sentence pair may be cut.
    """

    input_ids: list[int]
    word_ids: list[int]
    document: int
    starts: list[int] = field(default_factory=list)


def pack_documents(documents: Iterable[Sequence[str]], tokenizer, max_length: int = 128) -> list[PackedExample]:
    """Pack consecutive sentences of each document into examples of at most ``max_length`` tokens.

    Sentences are tokenised without special tokens, their jieba words aligned to the tokens
    (:func:`kexue.data.masking.align_words`), and appended greedily to the current example while
    ``[CLS] ... [SEP]`` fits; a sentence longer than ``max_length - 2`` tokens is cut into pieces. A new
    example starts at every document boundary (the layout of RoBERTa's DOC-SENTENCES packing).

    Args:
        documents: lists of sentences (e.g. blocks of :func:`kexue.data.corpus.build_corpus`'s output).
        tokenizer: a :class:`kexue.data.Tokenizer` (``cls_token_id``, ``sep_token_id`` and a fast ``backend``).
        max_length: ``--max-length``, at least 3.
    Raises:
        ConfigError: ``max_length`` < 3 (naming ``--max-length``).
    """
    if max_length < 3:
        raise ConfigError(f"--max-length: expected at least 3 (room for [CLS], a token and [SEP]), got {max_length}")
    room = max_length - 2
    out: list[PackedExample] = []
    for d, sentences in enumerate(documents):
        sentences = [s for s in sentences if s.strip()]
        if not sentences:
            continue
        enc = tokenizer.backend(sentences, add_special_tokens=False, return_offsets_mapping=True)
        ids: list[int] = []
        words: list[int] = []
        starts: list[int] = []
        next_word = 0

        def flush() -> None:
            nonlocal ids, words, starts, next_word
            if ids:
                out.append(PackedExample([tokenizer.cls_token_id] + ids + [tokenizer.sep_token_id],
                                         [-1] + words + [-1], d, starts))
            ids, words, starts, next_word = [], [], [], 0

        for text, sent_ids, offsets in zip(sentences, enc["input_ids"], enc["offset_mapping"]):
            sent_words = align_words([tuple(o) for o in offsets], segment_words(text))
            if len(ids) + len(sent_ids) > room:
                flush()
            for start in range(0, len(sent_ids), room):       # an over-long sentence becomes several pieces
                piece_ids, piece_words = sent_ids[start:start + room], sent_words[start:start + room]
                if len(ids) + len(piece_ids) > room:
                    flush()
                present = sorted({w for w in piece_words if w >= 0})
                renumber = {w: next_word + i for i, w in enumerate(present)}
                if piece_ids:
                    starts.append(len(ids) + 1)
                ids.extend(piece_ids)
                words.extend(renumber.get(w, -1) for w in piece_words)
                next_word += len(present)
        flush()
    return out


def residual_alpha(step: int, warmup_steps: int) -> float:
    """RoFormerV2's residual warm-up ``x = Norm(x + α·F(x))``: α rises linearly from 0 at step 0 to 1 at
    ``warmup_steps`` (``--alpha-warmup-steps``) and stays 1; ``warmup_steps = 0`` means α = 1 throughout.

    Set it on the model each step: ``model.residual_alpha = residual_alpha(step, n)``.
    Source: https://kexue.fm/archives/8998 (the article gives no schedule length).
    Raises:
        ConfigError: negative ``step`` or ``warmup_steps``.
    """
    if step < 0 or warmup_steps < 0:
        raise ConfigError(f"--alpha-warmup-steps: expected non-negative steps, got step={step}, "
                          f"warmup_steps={warmup_steps}")
    if warmup_steps == 0:
        return 1.0
    return min(1.0, step / warmup_steps)
