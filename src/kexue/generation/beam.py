"""Batched beam search: every example's beams in one ``[examples × beams]`` tensor, bert4keras' stopping rule.

At each step the top-``K`` continuations of the flattened ``[K × V]`` scores (summed log-probabilities) become
the new beams. If an example's best candidate (by ``score / length ** length_penalty``) ends with the end token
and holds at least ``min_ends`` end tokens, that example is done; otherwise its finished candidates leave the
beam (kept aside for ``num_return_sequences > 1``) and the others go on. At ``max_new_tokens`` the best candidate
is returned. With ``length_penalty = 0`` and one returned sequence this is bert4keras'
``AutoRegressiveDecoder.beam_search`` (spec §14.4), batched and with finished examples dropped from the batch.
"""

from __future__ import annotations

import torch

from kexue.generation.processing import apply_processors, log_probs
from kexue.generation.stepper import ModelStepper

Hypothesis = tuple[list[int], float, bool]


def _collect(winner: Hypothesis | None, others: list[Hypothesis], count: int) -> list[Hypothesis]:
    """``winner`` first, then finished hypotheses by score, then unfinished ones; padded to ``count``."""
    rest = sorted(others, key=lambda h: (not h[2], -h[1]))
    chosen = ([winner] if winner is not None else []) + rest
    chosen = chosen[:count]
    return chosen + [([], float("-inf"), False)] * (count - len(chosen))


def beam_search(stepper: ModelStepper, first_logits: torch.Tensor, *, num_beams: int, max_new_tokens: int,
                end_token_id: int, min_ends: int = 1, length_penalty: float = 0.0, temperature: float = 1.0,
                processors=(), num_return_sequences: int = 1) -> list[list[Hypothesis]]:
    """Beam-search every example of ``stepper`` (already started on the sources).

    Args:
        stepper: a started :class:`~kexue.generation.stepper.ModelStepper` with ``B`` rows.
        first_logits: ``[B, V]`` logits of the first target token.
        num_beams: ``K``; num_return_sequences: ``N <= K`` hypotheses returned per example.
        processors: logits processors (:mod:`kexue.generation.processing`), applied to live beams only.
    Returns:
        ``results[b]``: ``N`` tuples ``(token ids, normalised score, finished)``, the best first.
    """
    batch, vocab = first_logits.shape
    k = num_beams
    device = first_logits.device
    stepper.repeat_rows(k)
    logits = first_logits.repeat_interleave(k, dim=0)
    examples = torch.arange(batch, device=device)
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live beam at the start: the K copies of the source would give K equal beams
    seqs = torch.zeros((batch, k, 0), dtype=torch.long, device=device)
    ends = torch.zeros((batch, k), dtype=torch.long, device=device)
    pools: list[list[Hypothesis]] = [[] for _ in range(batch)]
    results: list[list[Hypothesis] | None] = [None] * batch
    for t in range(max_new_tokens):
        e = examples.numel()
        processed = logits.float()
        if processors:
            alive = torch.isfinite(scores.reshape(-1)).nonzero()[:, 0]
            processed = torch.full_like(processed, float("-inf"))
            processed[alive] = apply_processors(list(processors), seqs.reshape(e * k, t)[alive], logits[alive],
                                                examples.repeat_interleave(k)[alive])
        logp = log_probs(processed, temperature).view(e, k, vocab)
        top, index = (scores[:, :, None] + logp).view(e, k * vocab).topk(k, dim=1)
        beam, tokens = index // vocab, index % vocab
        seqs = torch.cat((seqs.gather(1, beam[:, :, None].expand(-1, -1, t)), tokens[:, :, None]), dim=2)
        ends = ends.gather(1, beam) + (tokens == end_token_id).long()
        live = torch.isfinite(top)
        finished = (tokens == end_token_id) & (ends >= min_ends) & live
        normed = top / float(t + 1) ** length_penalty
        best = normed.argmax(dim=1)
        rows = torch.arange(e, device=device)
        done = finished[rows, best] | ~live.any(dim=1)
        last = t + 1 == max_new_tokens
        seq_list, normed_list = seqs.tolist(), normed.tolist()
        for i, j in finished.nonzero().tolist():
            if not (done[i] and j == best[i]):
                pools[int(examples[i])].append((seq_list[i][j], normed_list[i][j], True))
        top = top.masked_fill(finished, float("-inf"))
        for i in range(e):
            if not (done[i] or last):
                continue
            b, j = int(examples[i]), int(best[i])
            winner = (seq_list[i][j], normed_list[i][j], bool(finished[i, j])) if bool(live[i, j]) else None
            others = [(seq_list[i][m], normed_list[i][m], False) for m in range(k)
                      if m != j and bool(torch.isfinite(top[i, m]))]
            results[b] = _collect(winner, pools[b] + others, num_return_sequences)
        keep = (~done).nonzero()[:, 0]
        if last or keep.numel() == 0:
            break
        stepper.select((keep[:, None] * k + beam[keep]).reshape(-1))
        logits = stepper.step(tokens[keep].reshape(-1))
        scores, seqs, ends, examples = top[keep], seqs[keep], ends[keep], examples[keep]
    return results
