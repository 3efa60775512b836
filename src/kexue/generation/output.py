"""What :func:`kexue.generation.generate` returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class GenerationOutput:
    """Generated targets of a batch: ``B`` examples, ``N`` (``num_return_sequences``) sequences each.

    Attributes:
        sequences: ``[B, N, T]`` long target token ids (the source is not repeated), ``T <= max_new_tokens`` the
            longest sequence; each sequence holds its end token(s) and is padded with ``pad_token_id`` after them.
        lengths: ``[B, N]`` long, the number of real tokens of each sequence (end tokens included).
        scores: ``[B, N]`` float, the sum of the token log-probabilities under the decoding distribution (after
            the logits processors and the temperature); beam search divides it by ``length ** length_penalty``.
        finished: ``[B, N]`` bool, whether the sequence reached ``min_ends`` end tokens (False = cut at
            ``max_new_tokens``).
    """

    sequences: torch.Tensor
    lengths: torch.Tensor
    scores: torch.Tensor
    finished: torch.Tensor

    def tolist(self) -> list[list[list[int]]]:
        """The sequences as Python lists ``[B][N][length]`` without padding (end tokens kept)."""
        seqs, lengths = self.sequences.tolist(), self.lengths.tolist()
        return [[s[:n] for s, n in zip(row, row_lengths)] for row, row_lengths in zip(seqs, lengths)]


def pack(results: list[list[tuple[list[int], float, bool]]], pad_token_id: int,
         device: torch.device | str | None = None) -> GenerationOutput:
    """Build a :class:`GenerationOutput` from ``results[b][n] = (token ids, score, finished)``."""
    batch, count = len(results), len(results[0]) if results else 0
    width = max((len(seq) for row in results for seq, _, _ in row), default=0)
    sequences = torch.full((batch, count, width), pad_token_id, dtype=torch.long)
    lengths = torch.zeros(batch, count, dtype=torch.long)
    scores = torch.zeros(batch, count)
    finished = torch.zeros(batch, count, dtype=torch.bool)
    for b, row in enumerate(results):
        for n, (seq, score, done) in enumerate(row):
            sequences[b, n, :len(seq)] = torch.tensor(seq, dtype=torch.long)
            lengths[b, n], scores[b, n], finished[b, n] = len(seq), score, done
    return GenerationOutput(sequences.to(device), lengths.to(device), scores.to(device), finished.to(device))
