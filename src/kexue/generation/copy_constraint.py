"""SPACES copy-constrained decoding: a 3-way copy-tag head steers which tokens the next step may emit.

The copy head (``Linear(H, 3)`` on the last hidden states) predicts the tag of the next token: 0 free, 1 copied
from the source (a run starts), 2 continuing the copied run. At each step, with ``s`` the row's source ids:

- tag 0: every token is allowed;
- tag 1: only tokens of ``s`` (and the end token, so a copied clause can end the summary);
- tag 2: only tokens that extend, in ``s``, the longest suffix of the output that occurs in ``s`` (the current copied
  n-gram; a 1-gram match at least); with no such continuation it falls back to tag 1;
- tag 2 is forbidden right after a tag-0 token: at the first step, or when the last token is not in ``s`` (the
  stateless reading of SPACES' rule, so beams need no side state), the tag is the best of 0 and 1;
- finally only the ``top_k`` largest remaining logits are kept (SPACES: 10, the Sparse Softmax of its loss).

Mechanics: :class:`CopyTagModel` wraps the Transformer so that its "logits" are ``[word logits (V) | tag logits
(3)]``; :class:`CopyConstraint`, a logits processor (:mod:`kexue.generation.processing`), reads the tag columns,
restricts the word columns and returns the tag columns as ``-inf`` (never chosen). The tag thus travels with its
row through beam reordering and finished-row removal. :func:`copy_generate` puts the two together.

Source: "SPACES:'抽取-生成'式长文本摘要(法研杯总结)", https://kexue.fm/archives/8046 (bojone/SPACES); spec arch §12 step 5.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from kexue.errors import ConfigError
from kexue.generation.decoding import generate
from kexue.generation.output import GenerationOutput

__all__ = ["CopyTagModel", "CopyConstraint", "copy_generate", "allowed_tokens"]

NUM_TAGS = 3


class _WordAndTagHead(nn.Module):
    """``hidden [..., H] -> [..., V + 3]``: the tied MLM logits, then the copy-tag logits."""

    def __init__(self, mlm_head: nn.Module, copy_head: nn.Module) -> None:
        super().__init__()
        self.mlm_head, self.copy_head = mlm_head, copy_head

    def forward(self, hidden: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.mlm_head(hidden, word_embeddings), self.copy_head(hidden)), dim=-1)


class CopyTagModel(nn.Module):
    """A kexue Transformer (MLM head) plus a copy head, seen by :func:`~kexue.generation.generate` as one model
    whose logits are ``[..., V + 3]`` (word logits, then tag logits). Decode it only with :class:`CopyConstraint`,
    which removes the tag columns.

    Args:
        backbone: :class:`kexue.models.Transformer` with an MLM head. copy_head: ``[..., H] -> [..., 3]``.
    """

    def __init__(self, backbone: nn.Module, copy_head: nn.Module) -> None:
        super().__init__()
        if getattr(backbone, "mlm_head", None) is None:
            raise ConfigError("CopyTagModel needs a Transformer with an MLM head")
        self.backbone = backbone
        self.mlm_head = _WordAndTagHead(backbone.mlm_head, copy_head)

    @property
    def config(self):
        """The backbone's config (``vocab_size`` is the word vocabulary, without the tag columns)."""
        return self.backbone.config

    @property
    def layers(self):
        """The backbone's blocks (the key/value cache has one entry per block)."""
        return self.backbone.layers

    @property
    def embeddings(self):
        """The backbone's embeddings (the MLM decoder is tied to ``embeddings.word_embeddings``)."""
        return self.backbone.embeddings

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, *, logits_to_keep=None, **kw):
        """The backbone's output with ``mlm_logits`` ``[B, k, V + 3]`` (``k``: ``logits_to_keep``, None = all)."""
        out = self.backbone(input_ids, attention_mask, token_type_ids, logits_to_keep=0, **kw)
        if logits_to_keep == 0:
            return out
        hidden = out.last_hidden_state
        if logits_to_keep is not None:
            hidden = hidden[:, hidden.shape[1] - logits_to_keep:]
        return dataclasses.replace(out, mlm_logits=self.mlm_head(hidden, self.embeddings.word_embeddings.weight))


def allowed_tokens(tag: int, prefix: Sequence[int], source: Sequence[int]) -> set[int] | None:
    """Tokens the next step may emit under copy tag ``tag`` (``None`` = any token).

    Tag 2: the tokens that follow, in ``source``, the occurrences of the longest suffix of ``prefix`` found in
    ``source``; empty (no continuation) falls back to tag 1, every token of ``source``.
    """
    if tag == 0:
        return None
    if tag == 2 and prefix:
        best, follow = 0, set()
        last = prefix[-1]
        for p in range(len(source) - 1):
            if source[p] != last:
                continue
            n = 1
            while n < len(prefix) and n <= p and source[p - n] == prefix[-1 - n]:
                n += 1
            if n > best:
                best, follow = n, {source[p + 1]}
            elif n == best:
                follow.add(source[p + 1])
        if follow:
            return follow
    return set(source)


class CopyConstraint:
    """Logits processor for :class:`CopyTagModel` outputs ``[N, V + 3]``: the copy-tag rules of the module
    docstring, then top-``k``; returns ``[N, V + 3]`` with the tag columns ``-inf``.

    Args:
        sources: per example of the ``generate`` batch, its source token ids (special tokens excluded).
        end_token_id: always allowed under tags 1 and 2.
        top_k: keep the ``top_k`` largest allowed logits (``None``: all).
    """

    def __init__(self, sources: Sequence[Sequence[int]], end_token_id: int, top_k: int | None = 10) -> None:
        if top_k is not None and top_k < 1:
            raise ConfigError(f"--sparse-k: expected an integer >= 1, got {top_k}")
        self.sources = [list(s) for s in sources]
        self.source_sets = [set(s) for s in self.sources]
        self.end_token_id, self.top_k = end_token_id, top_k
        self.last_tags: list[int] = []  # the tag chosen for each row at the latest call (for tests and inspection)

    def __call__(self, target_ids: torch.Tensor, logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        vocab = logits.shape[1] - NUM_TAGS
        words, tags = logits[:, :vocab].clone(), logits[:, vocab:]
        self.last_tags = []
        for n, (row, prefix) in enumerate(zip(rows.tolist(), target_ids.tolist())):
            scores = tags[n].clone()
            if not prefix or prefix[-1] not in self.source_sets[row]:
                scores[2] = float("-inf")  # no tag 2 right after a free (tag-0) token
            tag = int(scores.argmax())
            self.last_tags.append(tag)
            allowed = allowed_tokens(tag, prefix, self.sources[row])
            if allowed is not None:
                keep = torch.zeros(vocab, dtype=torch.bool, device=logits.device)
                keep[[t for t in allowed | {self.end_token_id} if 0 <= t < vocab]] = True
                words[n] = words[n].masked_fill(~keep, float("-inf"))
        if self.top_k is not None and self.top_k < vocab:
            kth = words.topk(self.top_k, dim=-1).values[:, -1:]
            words = words.masked_fill(words < kth, float("-inf"))
        return torch.cat((words, torch.full_like(tags, float("-inf"))), dim=1)


def copy_generate(backbone: nn.Module, copy_head: nn.Module, input_ids: torch.Tensor,
                  sources: Sequence[Sequence[int]], *, end_token_id: int, top_k: int | None = 10,
                  **generate_kwargs) -> GenerationOutput:
    """:func:`~kexue.generation.generate` under the copy-tag constraint (greedy or beam; SPACES: beam 1 / 3).

    Args:
        backbone: the seq2seq Transformer (MLM head). copy_head: its copy-tag head ``[.., H] -> [.., 3]``.
        input_ids: ``[B, L]`` right-padded ``[CLS] source [SEP]``. sources: the ``B`` source id lists (no specials).
        top_k: the final top-k of the logits (Sparse Softmax decoding). generate_kwargs: as ``generate``
            (``strategy``, ``num_beams``, ``max_new_tokens`` …; a ``logits_processor`` runs after the copy rules).
    Returns:
        ``GenerationOutput`` (token ids < V only).
    Raises:
        ConfigError: ``len(sources) != B``; as ``generate``.
    """
    if len(sources) != input_ids.shape[0]:
        raise ConfigError(f"copy_generate: {len(sources)} sources for a batch of {input_ids.shape[0]}")
    extra = generate_kwargs.pop("logits_processor", None)
    processors = [CopyConstraint(sources, end_token_id, top_k)]
    if extra is not None:
        processors += [extra] if callable(extra) else list(extra)
    return generate(CopyTagModel(backbone, copy_head), input_ids, end_token_id=end_token_id,
                    logits_processor=processors, **generate_kwargs)
