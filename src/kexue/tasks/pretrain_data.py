"""Pretraining examples: next-sentence pairs cut from packed examples, and the whole-word-masking collate.

Every random choice is a pure function of ``(seed, epoch, example index)``: the pair an example becomes and
its masking change every epoch (dynamic masking, RoBERTa) but are the same when a run is resumed, so a resumed
run equals an uninterrupted one.

Next-sentence pairs (BERT, https://arxiv.org/abs/1810.04805; used by NSP-BERT, https://kexue.fm/archives/8671):
an example packed from consecutive sentences of one document is cut at a sentence start into ``A`` and ``B``;
with probability 1/2 ``B`` is kept (label 0 = IsNext, Google's and Hugging Face's convention), otherwise it is
replaced by the same number of tokens from an example of another document (label 1 = NotNext). An example of
one sentence is cut at a word start near its middle. Without NSP an example is ``[CLS] tokens [SEP]`` as packed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from kexue.data.collate import pad_batch
from kexue.data.masking import IGNORE_INDEX, MaskingConfig, whole_word_mask
from kexue.tasks.pretrain import PackedExample

IS_NEXT, NOT_NEXT = 0, 1


def _rng(seed: int, epoch: int, index: int) -> random.Random:
    return random.Random((seed * 1_000_003 + epoch) * 1_000_000_007 + index)


def _compact(word_ids: Sequence[int], offset: int = 0) -> list[int]:
    """Renumber word ids to ``offset, offset + 1, ...`` in order of appearance (``-1`` stays ``-1``)."""
    table: dict[int, int] = {}
    out = []
    for w in word_ids:
        if w < 0:
            out.append(-1)
        else:
            out.append(table.setdefault(w, offset + len(table)))
    return out


class PretrainDataset:
    """Map-style dataset of MLM (+ NSP) examples over packed examples.

    Args:
        examples: :class:`kexue.tasks.pretrain.PackedExample` list (``[CLS] ... [SEP]`` each).
        nsp: build next-sentence pairs (``[CLS] A [SEP] B [SEP]``, segment ids 0/1) instead of single segments.
        seed: the run's seed. ``set_epoch(e)`` selects the epoch's draws (the Trainer's hook calls it).
        cls_id, sep_id: ``[CLS]`` / ``[SEP]`` ids.
    Items: ``{"input_ids", "token_type_ids", "word_ids", "nsp_label", "index", "epoch"}`` (lists / ints).
    Raises:
        ValueError: ``nsp`` with examples from fewer than two documents (no NotNext partner exists).
    """

    def __init__(self, examples: Sequence[PackedExample], *, nsp: bool, seed: int, cls_id: int, sep_id: int) -> None:
        self.examples = list(examples)
        self.nsp, self.seed, self.cls_id, self.sep_id = nsp, seed, cls_id, sep_id
        self.epoch = 0
        if nsp and len({e.document for e in self.examples}) < 2:
            raise ValueError("next-sentence pairs need examples from at least two documents")

    def __len__(self) -> int:
        return len(self.examples)

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s pairs and masks."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict:
        ex = self.examples[index]
        item = {"index": index, "epoch": self.epoch}
        if not self.nsp:
            return {**item, "input_ids": list(ex.input_ids), "token_type_ids": [0] * len(ex.input_ids),
                    "word_ids": list(ex.word_ids), "nsp_label": IS_NEXT}
        rng = _rng(self.seed, self.epoch, index)
        body, words = ex.input_ids[1:-1], ex.word_ids[1:-1]
        cut = self._cut(ex, rng)
        a_ids, a_words = body[:cut], words[:cut]
        room = len(body) - cut
        if rng.random() < 0.5:
            label, b_ids, b_words = IS_NEXT, body[cut:], words[cut:]
        else:
            label = NOT_NEXT
            while True:
                other = self.examples[rng.randrange(len(self.examples))]
                if other.document != ex.document:
                    break
            o_body, o_words = other.input_ids[1:-1], other.word_ids[1:-1]
            start = rng.choice(other.starts) - 1 if other.starts else 0
            if len(o_body) - start < room:
                start = max(0, len(o_body) - room)
            b_ids, b_words = o_body[start:start + room], o_words[start:start + room]
        a_words = _compact(a_words)
        b_words = _compact(b_words, offset=max(a_words, default=-1) + 1)
        ids = [self.cls_id, *a_ids, self.sep_id, *b_ids, self.sep_id]
        return {**item, "input_ids": ids, "token_type_ids": [0] * (len(a_ids) + 2) + [1] * (len(b_ids) + 1),
                "word_ids": [-1, *a_words, -1, *b_words, -1], "nsp_label": label}

    @staticmethod
    def _cut(ex: PackedExample, rng: random.Random) -> int:
        """Where ``B`` starts in the body (tokens without [CLS]/[SEP]): a sentence start other than the first,
        else a word start in the middle half; at least one token on each side when the body has two."""
        n = len(ex.input_ids) - 2
        inner = [s - 1 for s in ex.starts if 0 < s - 1 < n]
        if inner:
            return rng.choice(inner)
        words = ex.word_ids[1:-1]
        candidates = [i for i in range(max(1, n // 4), max(2, 3 * n // 4 + 1))
                      if i < n and (words[i] < 0 or words[i] != words[i - 1])]
        return rng.choice(candidates) if candidates else max(1, n // 2)


@dataclass(frozen=True)
class MaskingCollate:
    """Collate :class:`PretrainDataset` items into a padded, whole-word-masked batch.

    The masking generator is seeded from ``(seed, epoch, first example index)``, so the same batch is masked the
    same way after a resume and differently in another epoch.

    Returns (from ``__call__``): ``input_ids`` (masked), ``attention_mask``, ``token_type_ids`` ``[B, L]`` long,
    ``labels`` ``[B, L]`` (original ids at masked positions, ``-100`` elsewhere), ``nsp_labels`` ``[B]``.
    """

    pad_token_id: int
    mask_token_id: int
    vocab_size: int
    special_ids: tuple[int, ...]
    seed: int
    masking: MaskingConfig = MaskingConfig()

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        batch = pad_batch([{k: it[k] for k in ("input_ids", "token_type_ids", "word_ids")} for it in items],
                          pad_token_id=self.pad_token_id, pad_values={"word_ids": -1})
        word_ids = batch.pop("word_ids")
        gen = torch.Generator().manual_seed(hash((self.seed, items[0]["epoch"], items[0]["index"])) % (2 ** 63))
        masked, labels = whole_word_mask(batch["input_ids"], word_ids, mask_token_id=self.mask_token_id,
                                         vocab_size=self.vocab_size, generator=gen, config=self.masking,
                                         special_ids=self.special_ids)
        batch["input_ids"] = masked
        batch["labels"] = labels
        batch["nsp_labels"] = torch.tensor([it["nsp_label"] for it in items], dtype=torch.long)
        return batch


def masked_token_count(batch: dict[str, torch.Tensor]) -> int:
    """Number of MLM targets in a collated batch."""
    return int((batch["labels"] != IGNORE_INDEX).sum())


def fixed_batches(dataset: PretrainDataset, collate: Callable[[list[dict]], dict], batch_size: int
                  ) -> list[dict[str, torch.Tensor]]:
    """The held-out set as collated batches with epoch-0 draws (the same masks at every evaluation)."""
    dataset.set_epoch(0)
    return [collate([dataset[i] for i in range(s, min(s + batch_size, len(dataset)))])
            for s in range(0, len(dataset), batch_size)]
