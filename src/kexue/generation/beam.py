"""Batched beam search: every example's beams in one ``[examples × beams]`` tensor, bert4keras' stopping rule.

At each step the top-``K`` continuations of the flattened ``[K × V]`` scores (summed log-probabilities) become
the new beams. If an example's best candidate (by ``score / length ** length_penalty``) ends with the end token
and holds at least ``min_ends`` end tokens, it is the example's answer; finished candidates that are not the best
leave the beam (kept aside) and the others go on. An example is done when it has its answer and
``num_return_sequences - 1`` other finished hypotheses, when no live beam is left, or at ``max_new_tokens`` (where
the best candidate is the answer if none was found). Returned: the answer, then the other finished hypotheses by
score, then unfinished beams. With ``length_penalty = 0`` and one returned sequence this is bert4keras'
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
    winners: list[Hypothesis | None] = [None] * batch
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
        finished = (tokens == end_token_id) & (ends >= min_ends) & torch.isfinite(top)
        normed = top / float(t + 1) ** length_penalty
        best = normed.argmax(dim=1).tolist()
        last = t + 1 == max_new_tokens
        seq_list, normed_list, fin_list = seqs.tolist(), normed.tolist(), finished.tolist()
        top = top.masked_fill(finished, float("-inf"))  # finished candidates leave the beam
        still_live = torch.isfinite(top).tolist()
        done = torch.zeros(e, dtype=torch.bool, device=device)
        for i in range(e):
            b, j = int(examples[i]), best[i]
            if winners[b] is None and fin_list[i][j]:
                winners[b] = (seq_list[i][j], normed_list[i][j], True)
            pools[b].extend((seq_list[i][m], normed_list[i][m], True) for m in range(k)
                            if fin_list[i][m] and not (winners[b] is not None and winners[b][0] is seq_list[i][m]))
            enough = winners[b] is not None and 1 + len(pools[b]) >= num_return_sequences
            if not (enough or last or not any(still_live[i])):
                continue
            done[i] = True
            live_beams = [(seq_list[i][m], normed_list[i][m], False) for m in range(k) if still_live[i][m]]
            winner = winners[b]
            if winner is None and live_beams:  # cut at max_new_tokens: the best candidate, as bert4keras
                winner = max(live_beams, key=lambda h: h[1])
                live_beams.remove(winner)
            results[b] = _collect(winner, pools[b] + live_beams, num_return_sequences)
        keep = (~done).nonzero()[:, 0]
        if last or keep.numel() == 0:
            break
        stepper.select((keep[:, None] * k + beam[keep]).reshape(-1))
        logits = stepper.step(tokens[keep].reshape(-1))
        scores, seqs, ends, examples = top[keep], seqs[keep], ends[keep], examples[keep]
    return results
