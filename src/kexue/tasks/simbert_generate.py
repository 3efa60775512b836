"""Using a SimBERT model: similar-sentence generation re-ranked by the model's own cosine, and an in-memory index.

Generation (spec §4 "Inference"): ``[CLS] s [SEP]``, then ``n`` continuations in segment 1 until ``[SEP]``, drawn in
**one** batched :func:`kexue.generation.generate` call (the source repeated ``n`` times, key/value cache); the
candidates are deduplicated, copies of ``s`` dropped, and sorted by the cosine of their pooler vectors to ``s``'s.

Sampling is top-p (v2: 0.95) or top-k (v1: 5) by the Gumbel-max trick with one random stream per candidate
(:class:`CandidateSampler`): candidate ``i`` of seed ``s`` is the same whether the ``n`` candidates are drawn together
or one at a time, which makes the batched-vs-sequential speed comparison one of identical outputs.

Sources: https://kexue.fm/archives/7427, https://kexue.fm/archives/8454.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from kexue.embeddings import SentenceEncoder
from kexue.errors import ConfigError
from kexue.generation import generate
from kexue.generation.sampling import top_k_filter, top_p_filter
from kexue.generation.texts import target_text
from kexue.tasks.seq2seq_data import content_ids, encode_source

DEFAULT_TOP_P = 0.95


class CandidateSampler:
    """Logits processor that turns argmax decoding into sampling with one random stream per candidate.

    ``logits / temperature``, then the top-k and top-p filters, then Gumbel noise ``-log(-log u)`` with ``u`` drawn
    from candidate ``offset + row``'s own ``torch.Generator`` (seeded ``seed``, ``offset + row``): argmax of the result
    is a draw from the filtered softmax. Use with ``generate(..., strategy="greedy")`` and one row per candidate.

    Raises:
        ConfigError: invalid temperature / top-k / top-p (named like their flags).
    """

    def __init__(self, seed: int, *, top_k: int | None = None, top_p: float | None = None, temperature: float = 1.0,
                 offset: int = 0) -> None:
        if not temperature > 0:
            raise ConfigError(f"--temperature: expected a number > 0, got {temperature}")
        if top_k is not None:
            top_k_filter(torch.zeros(1, 1), top_k)  # validates
        if top_p is not None:
            top_p_filter(torch.zeros(1, 1), top_p)
        self.seed, self.top_k, self.top_p, self.temperature, self.offset = seed, top_k, top_p, temperature, offset
        self._generators: dict[int, torch.Generator] = {}

    def _generator(self, candidate: int) -> torch.Generator:
        if candidate not in self._generators:
            self._generators[candidate] = torch.Generator().manual_seed(self.seed * 1_000_003 + candidate)
        return self._generators[candidate]

    def __call__(self, target_ids: torch.Tensor, logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``[N, V]`` filtered logits plus per-candidate Gumbel noise."""
        logits = logits.float() / self.temperature
        if self.top_k is not None:
            logits = top_k_filter(logits, self.top_k)
        if self.top_p is not None:
            logits = top_p_filter(logits, self.top_p)
        u = torch.stack([torch.rand(logits.shape[-1], generator=self._generator(self.offset + int(r)))
                         for r in rows.tolist()]).to(logits.device)
        return logits - torch.log(-torch.log(u.clamp(1e-12, 1.0 - 1e-7)))


@dataclass(frozen=True)
class Candidate:
    """A generated sentence and its cosine to the input (the model's own pooler vectors)."""

    text: str
    score: float


class SimilarSentenceGenerator:
    """Generate sentences similar to a given one and rank them by the same model's cosine.

    Args:
        backbone: a kexue Transformer with an MLM head (UniLM decoding); encoder: the :class:`SentenceEncoder` over
            the same backbone (pooling ``pooler``) that scores the candidates; max_source_length: input tokens kept.
    """

    def __init__(self, backbone, encoder: SentenceEncoder, max_source_length: int = 64) -> None:
        self.backbone = backbone
        self.encoder = encoder
        self.tokenizer = encoder.tokenizer
        self.max_source_length = max_source_length

    def sample(self, text: str, n: int, *, top_k: int | None = None, top_p: float | None = None,
               temperature: float = 1.0, max_new_tokens: int = 32, seed: int = 0, offset: int = 0) -> list[str]:
        """``n`` raw candidates (duplicates and copies included) from ONE :func:`generate` call; candidate ``i`` is
        stream ``offset + i`` of ``seed``. Top-p 0.95 when neither ``top_k`` nor ``top_p`` is given.

        Raises:
            ConfigError: ``n < 1`` (``--num-samples``) or an invalid sampling option.
        """
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"--num-samples: expected an integer >= 1, got {n!r}")
        if top_k is None and top_p is None:
            top_p = DEFAULT_TOP_P
        tok = self.tokenizer
        source = encode_source(content_ids(tok, [text])[0], tok.cls_token_id, tok.sep_token_id,
                               self.max_source_length)
        ids = torch.tensor([source["input_ids"]] * n)
        device = next(self.backbone.parameters()).device
        sampler = CandidateSampler(seed, top_k=top_k, top_p=top_p, temperature=temperature, offset=offset)
        out = generate(self.backbone, ids.to(device), torch.zeros_like(ids).to(device), strategy="greedy",
                       max_new_tokens=max_new_tokens, end_token_id=tok.sep_token_id, logits_processor=sampler)
        return [target_text(tok, row[0]) for row in out.tolist()]

    def rank(self, text: str, candidates: Sequence[str], keep: int | None = None) -> list[Candidate]:
        """Distinct non-empty candidates other than ``text`` (also as the tokenizer writes it back: lower case,
        no spaces between CJK characters), by descending cosine to ``text`` (the first ``keep``)."""
        seen = {text.strip(), target_text(self.tokenizer, content_ids(self.tokenizer, [text])[0]).strip(), ""}
        distinct = []
        for cand in candidates:
            if cand.strip() not in seen:
                seen.add(cand.strip())
                distinct.append(cand)
        if not distinct:
            return []
        vecs = self.encoder.encode([text, *distinct], batch_size=len(distinct) + 1, normalize=True)
        scores = vecs[1:] @ vecs[0]
        order = np.argsort(-scores, kind="stable")[:keep]
        return [Candidate(distinct[i], float(scores[i])) for i in order]

    def generate(self, text: str, n: int = 100, keep: int | None = 20, **sampling) -> list[Candidate]:
        """:meth:`sample` then :meth:`rank`: at most ``keep`` similar sentences with their cosine, best first."""
        return self.rank(text, self.sample(text, n, **sampling), keep)


class SentenceIndex:
    """Exact in-memory cosine search over sentence vectors (numpy; faiss ``IndexFlatIP`` when installed).

    Args:
        encoder: encodes the sentences and the queries; sentences: the searchable texts.
    Raises:
        ConfigError: no sentences.
    """

    def __init__(self, encoder: SentenceEncoder, sentences: Sequence[str], batch_size: int = 64) -> None:
        if not sentences:
            raise ConfigError("search: the sentence file holds no sentence")
        self.encoder = encoder
        self.sentences = list(sentences)
        self.vectors = encoder.encode(self.sentences, batch_size=batch_size, normalize=True)
        self._faiss = None
        try:
            import faiss  # optional
        except ImportError:
            pass
        else:
            self._faiss = faiss.IndexFlatIP(self.vectors.shape[1])
            self._faiss.add(self.vectors)

    def search(self, queries: Sequence[str], k: int = 10) -> list[list[Candidate]]:
        """The ``k`` most similar indexed sentences of each query, by descending cosine.

        Raises:
            ConfigError: ``k < 1`` (``--top-k``).
        """
        if not isinstance(k, int) or k < 1:
            raise ConfigError(f"--top-k: expected an integer >= 1, got {k!r}")
        k = min(k, len(self.sentences))
        q = self.encoder.encode(list(queries), normalize=True)
        if self._faiss is not None:
            scores, idx = self._faiss.search(q, k)
        else:
            sims = q @ self.vectors.T
            idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
            scores = np.take_along_axis(sims, idx, axis=1)
        return [[Candidate(self.sentences[j], float(s)) for j, s in zip(row_i, row_s)]
                for row_i, row_s in zip(idx, scores)]
