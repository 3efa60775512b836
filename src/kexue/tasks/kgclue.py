"""The KgCLUE recipe: one-hop question answering as retrieval by constrained generation (Seq2Seq + prefix tree).

Training (``kexue train kgclue``): UniLM seq2seq (:mod:`kexue.tasks.seq2seq`) on
``[CLS] Q [SEP] S [SEP] P [SEP] M [SEP]`` — the ``(S, P, M)`` order, which the article found 8–10 points better
than ``(S, M, P)``; Q ≤ 64 tokens and the whole ≤ 128 by default (the article's limits).

Evaluation (``kexue eval kgclue``): beam search constrained to the keys ``S [SEP] P [SEP] M`` of the knowledge base
(:func:`kexue.generation.generate` with a :class:`~kexue.generation.TrieConstraint` over a
:class:`~kexue.generation.TokenTrie`, KV-cached, decoding until the third ``[SEP]``; ``--lookahead`` turns on the
constraint's look-ahead re-weighting once S is decoded), the decoded key's value is the answer O, scored by EM / F1
on O (:mod:`kexue.metrics.kgclue`).

**Knowledge base.** The real KgCLUE base (20.6M triples) is not stored here, so the knowledge base is built from the
answer triples of train, dev and test_public (about 22k distinct triples). Retrieval is therefore much easier than
in the real task (the gold triple is always among few candidates), and every report says so (``knowledge_base`` in
the results). A key with several objects keeps them all, the first one is the answer (as the reference code).

Source: "Seq2Seq+前缀树:检索任务新范式(以KgCLUE为例)", https://kexue.fm/archives/8802; spec §9.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from kexue.data.readers.seq2seq import KgclueExample, load_kgclue
from kexue.data.tokenization import Tokenizer
from kexue.errors import ConfigError
from kexue.generation import TokenTrie, TrieConstraint, generate
from kexue.metrics.kgclue import kgclue_metrics
from kexue.tasks.common import jsonable
from kexue.tasks.seq2seq import Seq2SeqConfig, Seq2SeqLM, fit_seq2seq, load_seq2seq_backbone
from kexue.tasks.seq2seq_data import Seq2SeqCollator, content_ids, encode_pair, encode_source
from kexue.train import TrainerConfig, prepare_run_dir
from kexue.train.seed import seed_everything

KB_SPLITS = ("train", "dev", "test")
KB_NOTE = ("knowledge base built from the answer triples of train + dev + test_public (the 20.6M-triple KgCLUE base "
           "is not available here): retrieval is easier than the real task")


def kgclue_config(**kwargs: Any) -> Seq2SeqConfig:
    """A :class:`Seq2SeqConfig` with KgCLUE's defaults: ``data="kgclue"``, question ≤ 64 tokens, target ≤ 61
    (whole ≤ 128), then ``kwargs``."""
    return Seq2SeqConfig(**{"data": "kgclue", "max_source_length": 64, "max_target_length": 61, **kwargs})


def key_ids(tokenizer: Tokenizer, examples: Sequence[KgclueExample]) -> list[list[int]]:
    """Token ids of ``S [SEP] P [SEP] M`` for each example (the trie key; the training target without its end)."""
    sep = tokenizer.sep_token_id
    texts = list(dict.fromkeys(t for e in examples for t in (e.subject, e.predicate, e.mention) if t))
    ids = dict(zip(texts, content_ids(tokenizer, texts)))  # each distinct text tokenized once
    ids[""] = []
    return [[*ids[e.subject], sep, *ids[e.predicate], sep, *ids[e.mention]] for e in examples]


def knowledge_base(data: str, log: Callable[[str], None] = print) -> list[KgclueExample]:
    """The answer triples of ``data``'s train, dev and test splits (``test`` = test_public), with repeats."""
    triples = [e for split in KB_SPLITS for e in load_kgclue(data, split)]
    log(f"{KB_NOTE}: {len({(e.head, e.predicate, e.obj) for e in triples})} distinct triples")
    return triples


def build_trie(tokenizer: Tokenizer, triples: Sequence[KgclueExample]) -> TokenTrie:
    """Prefix tree of the keys ``S [SEP] P [SEP] M``; the value of a key is its objects O tab-joined in data order
    (the first one is the answer, as the reference code)."""
    objects: dict[tuple[int, ...], list[str]] = {}
    for key, e in zip(key_ids(tokenizer, triples), triples):
        found = objects.setdefault(tuple(key), [])
        if e.obj not in found:
            found.append(e.obj)
    return TokenTrie.build(list(objects), ["\t".join(v) for v in objects.values()])


def encode_examples(tokenizer: Tokenizer, examples: Sequence[KgclueExample], cfg: Seq2SeqConfig
                    ) -> list[dict[str, list[int]]]:
    """``[CLS] Q [SEP] S [SEP] P [SEP] M [SEP]`` with segment ids for training."""
    questions = content_ids(tokenizer, [e.question for e in examples])
    return [encode_pair(q, k, tokenizer.cls_token_id, tokenizer.sep_token_id, cfg.max_source_length,
                        cfg.max_target_length) for q, k in zip(questions, key_ids(tokenizer, examples))]


def train_kgclue(cfg: Seq2SeqConfig, trainer_cfg: TrainerConfig, log: Callable[[str], None] = print
                 ) -> dict[str, Any]:
    """Train the KgCLUE seq2seq model on ``cfg.data``'s train split; ``best/`` by teacher-forced dev accuracy.

    Returns:
        (rank 0) ``{"data", "model", "train_questions", "dev_questions", "dev", "best_dir", "knowledge_base", ...}``,
        also written to ``<output_dir>/results.json``.
    Raises:
        ConfigError / DataFormatError: bad options or data (before the run folder is created).
    """
    train = load_kgclue(cfg.data, "train")
    dev = load_kgclue(cfg.data, "dev")
    triples = knowledge_base(cfg.data, log)
    train = train[:cfg.train_limit] if cfg.train_limit is not None else train
    dev = dev[:cfg.eval_limit] if cfg.eval_limit is not None else dev
    prepare_run_dir(trainer_cfg, {"task": "kgclue", "kgclue": cfg}, log=log)
    # a scratch vocabulary covers the questions and every knowledge-base text, so keys have no [UNK]
    texts = [e.question for e in train] + [t for e in triples for t in (e.subject, e.predicate, e.mention, e.obj)]
    seed_everything(trainer_cfg.seed)  # --seed decides a scratch model's and a new MLM head's initialisation
    backbone, tokenizer = load_seq2seq_backbone(cfg.model, texts, cfg.scratch, cfg.max_length, log)
    model = Seq2SeqLM(backbone, tokenizer, {"max_source_length": cfg.max_source_length,
                                            "max_target_length": cfg.max_target_length, "target": "S,P,M"})
    log(f"{cfg.data}: {len(train)} training questions, {len(dev)} dev questions; target order (S, P, M)")
    trainer, metrics = fit_seq2seq(model, encode_examples(tokenizer, train, cfg), encode_examples(tokenizer, dev, cfg),
                                   cfg, trainer_cfg, {"task": "kgclue", "kgclue": jsonable(asdict(cfg))}, log)
    if metrics is None:
        return {}
    log("dev (best checkpoint, teacher-forced): " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    results = {"data": cfg.data, "model": cfg.model, "loss": cfg.loss, "train_questions": len(train),
               "dev_questions": len(dev), "dev": metrics, "best_dir": str(Path(trainer_cfg.output_dir) / "best"),
               "optimizer_steps": trainer.state.global_step, "knowledge_base": KB_NOTE}
    (Path(trainer_cfg.output_dir) / "results.json").write_text(
        json.dumps(jsonable(results), indent=2, allow_nan=False), encoding="utf-8")
    return results


def predict_kgclue(model: Seq2SeqLM, questions: Sequence[str], trie: TokenTrie, *, beam_size: int = 3,
                   lookahead: bool = False, batch_size: int = 32, max_source_length: int = 64
                   ) -> list[dict[str, Any]]:
    """Answer each question by beam search constrained to the keys of ``trie`` (greedy for ``beam_size`` 1).

    Returns:
        per question ``{"question", "key": the decoded S [SEP] P [SEP] M as text, "answer": O}`` (O = the first
        object of the decoded key).
    Raises:
        ConfigError: ``beam_size`` / ``batch_size`` < 1.
    """
    for flag, value in (("--beam", beam_size), ("--batch-size", batch_size)):
        if value < 1:
            raise ConfigError(f"{flag}: expected an integer >= 1, got {value}")
    tok = model.tokenizer
    sep = tok.sep_token_id
    q_ids = content_ids(tok, list(questions))
    collate = Seq2SeqCollator(tok.pad_token_id)
    out: list[dict[str, Any]] = []
    for start in range(0, len(q_ids), batch_size):
        chunk = q_ids[start:start + batch_size]
        batch = collate([encode_source(q, tok.cls_token_id, sep, max_source_length) for q in chunk])
        constraint = TrieConstraint(trie, sep, lookahead_queries=chunk if lookahead else None, separator_id=sep)
        result = generate(model.backbone, batch["input_ids"], batch["token_type_ids"],
                          attention_mask=batch["attention_mask"], strategy="beam" if beam_size > 1 else "greedy",
                          num_beams=beam_size, max_new_tokens=constraint.required_new_tokens, end_token_id=sep,
                          min_ends=3, logits_processor=constraint)
        for text, (ids,) in zip(questions[start:start + batch_size], result.tolist()):
            key = ids[:-1] if ids and ids[-1] == sep else ids  # the closing [SEP]
            value = trie.get(key)
            out.append({"question": text, "key": tok.decode(key, skip_special_tokens=False),
                        "answer": value.split("\t")[0] if value is not None else ""})
    return out


def evaluate_kgclue(model_path: str, data: str = "kgclue", split: str = "dev", *, beam_size: int = 3,
                    lookahead: bool = False, limit: int | None = None, batch_size: int = 32,
                    predictions: str | Path | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Load a trained model, build the knowledge base and its trie, answer ``split``'s questions, score EM/F1.

    Returns:
        ``{"split", "questions", "beam", "lookahead", "em", "f1", "score", "seconds", "knowledge_base"}``
        (EM/F1/score in ``[0, 1]``); with ``predictions`` a JSON-lines file of the answers is also written.
    Raises:
        ConfigError: bad options, an unknown model or data. DataFormatError: a malformed data line.
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit: expected an integer >= 1, got {limit}")
    if beam_size < 1:
        raise ConfigError(f"--beam: expected an integer >= 1, got {beam_size}")
    examples = load_kgclue(data, split)[:limit]
    triples = knowledge_base(data, log)
    model = Seq2SeqLM.from_pretrained(model_path, log=log)
    max_source = int(model.settings.get("max_source_length", 64))
    trie = build_trie(model.tokenizer, triples)
    start = time.perf_counter()
    preds = predict_kgclue(model, [e.question for e in examples], trie, beam_size=beam_size, lookahead=lookahead,
                           batch_size=batch_size, max_source_length=max_source)
    seconds = time.perf_counter() - start
    metrics = kgclue_metrics([p["answer"] for p in preds], [e.obj for e in examples])
    if predictions is not None:
        with Path(predictions).open("w", encoding="utf-8") as handle:
            for p, e in zip(preds, examples):
                handle.write(json.dumps({**p, "gold": e.obj}, ensure_ascii=False) + "\n")
    return {"split": split, "questions": len(examples), "beam": beam_size, "lookahead": lookahead,
            "em": metrics["em"], "f1": metrics["f1"], "score": metrics["score"], "seconds": seconds,
            "knowledge_base": KB_NOTE}
