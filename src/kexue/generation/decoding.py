"""``generate``: batched greedy, beam and sampling decoding with kexue's Transformer (UniLM or causal LM).

UniLM seq2seq with one BERT (https://kexue.fm/archives/6933): the input is ``[CLS] source [SEP]`` (segment 0),
the target is generated in segment 1 until the end token (``[SEP]``); the source is encoded once and its keys and
values serve every step (the UniLM mask keeps source states independent of the target). Causal mode continues a
prompt under the lower-triangular mask. Decoding follows bert4keras' ``AutoRegressiveDecoder`` (spec §14.4):
``beam_search(topk, min_ends)`` and ``random_sample(n, topk, topp)``, batched, with a key/value cache.
"""

from __future__ import annotations

import torch

from kexue.errors import ConfigError
from kexue.generation.beam import Hypothesis, beam_search
from kexue.generation.output import GenerationOutput, pack
from kexue.generation.processing import as_processor_list, apply_processors, log_probs
from kexue.generation.sampling import sample_tokens, top_k_filter, top_p_filter
from kexue.generation.stepper import MODES, ModelStepper

STRATEGIES = ("greedy", "beam", "sample")


def check_options(*, mode: str = "unilm", strategy: str = "greedy", num_beams: int = 1, max_new_tokens: int = 32,
                  min_ends: int = 1, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                  num_return_sequences: int = 1) -> None:
    """Validate :func:`generate`'s model-independent options (the CLI calls it before loading anything).

    Raises:
        ConfigError: the first invalid option, named like its CLI flag.
    """
    if mode not in MODES:
        raise ConfigError(f"mode (--mode) must be one of {MODES}, got {mode!r}")
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy (--strategy) must be one of {STRATEGIES}, got {strategy!r}")
    for name, flag, value in (("max_new_tokens", "--max-new-tokens", max_new_tokens), ("min_ends", "--min-ends",
                              min_ends), ("num_beams", "--num-beams", num_beams),
                              ("num_return_sequences", "--num-return-sequences", num_return_sequences)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} ({flag}) must be an integer >= 1, got {value!r}")
    if not temperature > 0:
        raise ConfigError(f"temperature (--temperature) must be > 0, got {temperature}")
    if strategy != "beam" and num_beams != 1:
        raise ConfigError(f"num_beams (--num-beams) {num_beams} needs strategy (--strategy) 'beam'")
    if strategy != "sample" and (top_k is not None or top_p is not None):
        raise ConfigError("top_k / top_p (--top-k / --top-p) need strategy (--strategy) 'sample'")
    if top_k is not None:
        top_k_filter(torch.zeros(1, 1), top_k)  # validates
    if top_p is not None:
        top_p_filter(torch.zeros(1, 1), top_p)
    if strategy == "greedy" and num_return_sequences != 1:
        raise ConfigError("num_return_sequences (--num-return-sequences) > 1 needs strategy 'beam' or 'sample'")
    if strategy == "beam" and num_return_sequences > num_beams:
        raise ConfigError(f"num_return_sequences (--num-return-sequences) {num_return_sequences} exceeds "
                          f"num_beams (--num-beams) {num_beams}")


def _check(model, input_ids, mode, strategy, num_beams, max_new_tokens, end_token_id, min_ends, temperature,
           top_k, top_p, num_return_sequences, processors) -> None:
    check_options(mode=mode, strategy=strategy, num_beams=num_beams, max_new_tokens=max_new_tokens,
                  min_ends=min_ends, temperature=temperature, top_k=top_k, top_p=top_p,
                  num_return_sequences=num_return_sequences)
    if input_ids.dim() != 2 or input_ids.dtype not in (torch.long, torch.int32) or input_ids.shape[1] == 0:
        raise ConfigError(f"input_ids must be a non-empty [batch, source_len] integer tensor, got "
                          f"{tuple(input_ids.shape)} {input_ids.dtype}")
    if end_token_id is None or not 0 <= end_token_id < model.config.vocab_size:
        raise ConfigError(f"end_token_id must be a token id in [0, {model.config.vocab_size}) (the [SEP] id for "
                          f"UniLM), got {end_token_id}")
    if strategy == "beam" and num_beams > model.config.vocab_size:
        raise ConfigError(f"num_beams (--num-beams) {num_beams} exceeds the vocabulary ({model.config.vocab_size})")
    needed = max((getattr(p, "required_new_tokens", 0) for p in processors), default=0)
    if max_new_tokens < needed:
        raise ConfigError(f"max_new_tokens (--max-new-tokens) {max_new_tokens} is below the {needed} tokens a "
                          f"logits processor needs (the longest trie key plus the end token)")
    cfg = model.config
    if cfg.family == "bert" and input_ids.shape[1] + max_new_tokens > cfg.max_position_embeddings:
        raise ConfigError(f"source length {input_ids.shape[1]} + max_new_tokens (--max-new-tokens) "
                          f"{max_new_tokens} exceeds max_position_embeddings={cfg.max_position_embeddings}")


def _decode_rows(stepper: ModelStepper, logits: torch.Tensor, rows: torch.Tensor, choose, *, max_new_tokens: int,
                 end_token_id: int, min_ends: int, temperature: float, processors) -> list[Hypothesis]:
    """Greedy or sampling decoding of every row; ``choose(logits [n, V]) -> tokens [n]``."""
    total = logits.shape[0]
    device = logits.device
    out = torch.zeros((total, max_new_tokens), dtype=torch.long, device=device)
    lengths = torch.zeros(total, dtype=torch.long, device=device)
    scores = torch.zeros(total, device=device)
    ends = torch.zeros(total, dtype=torch.long, device=device)
    finished = torch.zeros(total, dtype=torch.bool, device=device)
    active = torch.arange(total, device=device)
    for t in range(max_new_tokens):
        processed = apply_processors(processors, out[active, :t], logits, rows[active])
        tokens = choose(processed)
        scores[active] += log_probs(processed, temperature).gather(1, tokens[:, None])[:, 0]
        out[active, t] = tokens
        lengths[active] = t + 1
        ends[active] += (tokens == end_token_id).long()
        done = ends[active] >= min_ends
        finished[active[done]] = True
        keep = (~done).nonzero()[:, 0]
        if t + 1 == max_new_tokens or keep.numel() == 0:
            break
        if keep.numel() < active.numel():  # some rows finished: drop them from the model's state
            stepper.select(keep)
        active = active[keep]
        logits = stepper.step(tokens[keep])
    return [(out[i, :n].tolist(), float(s), bool(f))
            for i, (n, s, f) in enumerate(zip(lengths.tolist(), scores.tolist(), finished.tolist()))]


@torch.no_grad()
def generate(
    model,
    input_ids: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    *,
    attention_mask: torch.Tensor | None = None,
    mode: str = "unilm",
    strategy: str = "greedy",
    num_beams: int = 1,
    max_new_tokens: int = 32,
    end_token_id: int | None = None,
    min_ends: int = 1,
    length_penalty: float = 0.0,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    num_return_sequences: int = 1,
    logits_processor=None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> GenerationOutput:
    """Generate targets for a batch of sources with a kexue :class:`~kexue.models.Transformer` (MLM head needed).

    Args:
        model: the Transformer (run in eval mode without gradients; its mode is restored afterwards).
        input_ids: ``[B, L]`` long sources, right-padded: ``[CLS] source [SEP]`` for UniLM, the prompt for causal.
        token_type_ids: ``[B, L]`` source segment ids (default all 0). UniLM targets get segment 1; causal
            targets continue the segment of the row's last source token.
        attention_mask: ``[B, L]`` (1 = real token); default ``input_ids != model.config.pad_token_id``.
        mode: ``"unilm"`` or ``"causal"``.
        strategy: ``"greedy"``, ``"beam"`` (batched, :mod:`kexue.generation.beam`) or ``"sample"``.
        num_beams: beams per example (``strategy="beam"``).
        max_new_tokens: most target tokens per sequence (end tokens included).
        end_token_id: the end token (``[SEP]`` for UniLM); required.
        min_ends: a sequence is finished at its ``min_ends``-th end token (KgCLUE's ``S [SEP] P [SEP] M [SEP]``: 3).
        length_penalty: beam search ranks finished candidates by ``score / length ** length_penalty`` (0 = sum of
            log-probabilities, bert4keras).
        temperature: divides the logits (sampling and beam scores).
        top_k / top_p: sampling filters (:mod:`kexue.generation.sampling`), ``strategy="sample"`` only.
        num_return_sequences: ``N`` sequences per example: independent samples, or the best ``N <= num_beams``
            beam hypotheses; greedy: 1.
        logits_processor: a processor or a list of them (:mod:`kexue.generation.processing`), e.g.
            :class:`kexue.generation.TrieConstraint`.
        generator: ``torch.Generator`` of the sampling draws.
        use_cache: keep keys/values (True) or re-encode source + target at every step (False; same outputs,
            the reference for tests and benchmarks).
    Returns:
        :class:`~kexue.generation.output.GenerationOutput`: ``sequences [B, N, T]`` target ids (end tokens
        included, then ``pad_token_id``), ``lengths [B, N]``, ``scores [B, N]``, ``finished [B, N]``.
    Raises:
        ConfigError: invalid options (named like their CLI flags), before any computation.
    """
    processors = as_processor_list(logits_processor)
    _check(model, input_ids, mode, strategy, num_beams, max_new_tokens, end_token_id, min_ends, temperature,
           top_k, top_p, num_return_sequences, processors)
    input_ids = input_ids.long()
    if attention_mask is None:
        attention_mask = (input_ids != model.config.pad_token_id).long()
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    was_training = model.training
    model.eval()
    try:
        stepper = ModelStepper(model, mode, use_cache)
        first = stepper.start(input_ids, attention_mask.long(), token_type_ids.long())
        batch = input_ids.shape[0]
        common = dict(max_new_tokens=max_new_tokens, end_token_id=end_token_id, min_ends=min_ends,
                      temperature=temperature, processors=processors)
        if strategy == "beam":
            results = beam_search(stepper, first, num_beams=num_beams, length_penalty=length_penalty,
                                  num_return_sequences=num_return_sequences, **common)
        else:
            n = num_return_sequences
            stepper.repeat_rows(n)
            rows = torch.arange(batch, device=input_ids.device).repeat_interleave(n)
            if strategy == "greedy":
                def choose(logits):
                    return logits.argmax(dim=-1)
            else:
                def choose(logits):
                    return sample_tokens(logits, temperature=temperature, top_k=top_k, top_p=top_p,
                                         generator=generator)
            flat = _decode_rows(stepper, first.repeat_interleave(n, dim=0), rows, choose, **common)
            results = [flat[b * n:(b + 1) * n] for b in range(batch)]
    finally:
        model.train(was_training)
    return pack(results, model.config.pad_token_id, input_ids.device)
