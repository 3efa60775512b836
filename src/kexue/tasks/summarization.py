"""SPACES: extract-then-generate summarisation (``kexue train summarize``).

Stage 1 (documents in the CAIL2020 sfzy format only, :mod:`kexue.tasks.summarization_extract`): clauses, oracle
labels, a DGCNN extractor over frozen clause vectors, out-of-fold extractions. Stage 2, the generator: UniLM
seq2seq (:class:`kexue.tasks.seq2seq.Seq2SeqLM`) from the extraction to the summary, with

- the source drawn per example and step from the extractor's output (``source_1``) or the oracle extraction
  (``source_2``) while training, ``source_1`` at evaluation (short-text data such as ``lcsts_clge``: the text);
- input noise: each input token replaced with probability ``noise`` by a random token of the same sequence, the
  labels clean;
- the copy head (``--copy``): a 3-way ``Linear(H, 3)`` on the last hidden states predicting the copy tag of the
  next token (LCS tags of the noised source and the target, :func:`~kexue.tasks.summarization_data.copy_tags`);
  loss = seq2seq loss + ``copy_weight`` (2) × copy cross-entropy, both over the target tokens;
- the seq2seq loss ``ce`` or ``sparse-softmax`` (top-``k``, SPACES: 10), and decoding restricted to the top-``k``
  logits, under the predicted copy tags with ``--copy`` (:mod:`kexue.generation.copy_constraint`).

Evaluation: teacher-forced dev token accuracy selects ``best/``; at the end the best model decodes the test split
(``--test-limit`` texts) and character ROUGE-1/2/L F1 (×100, ``rouge-score``) goes into ``results.json``.

Source: "SPACES:'抽取-生成'式长文本摘要(法研杯总结)", https://kexue.fm/archives/8046 (bojone/SPACES); spec arch §12.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kexue.data.collate import pad_batch
from kexue.errors import ConfigError
from kexue.generation import generate
from kexue.generation.copy_constraint import copy_generate
from kexue.generation.sampling import top_k_filter
from kexue.generation.texts import target_text
from kexue.tasks.common import jsonable
from kexue.tasks.seq2seq import Seq2SeqConfig, Seq2SeqLM, make_evaluator, seq2seq_loss
from kexue.tasks.seq2seq_data import content_ids, encode_pair, encode_source
from kexue.tasks.summarization_data import copy_tags

__all__ = ["SummarizeConfig", "CopySeq2SeqLM", "SpacesCollator", "spaces_loss", "summarize_texts", "char_rouge"]

COPY_HEAD_FILE = "copy_head.pt"


@dataclass
class SummarizeConfig:
    """Options of ``kexue train summarize`` beyond the seq2seq ones (``seq2seq``: model, data, lengths, loss).

    Args:
        copy: train the copy head and decode under its tags (``--copy/--no-copy``). copy_weight: its loss weight
            (``--copy-weight``, SPACES: 2). noise: input-token replacement probability (``--noise``, SPACES: 0.15).
        num_beams: decoding beam (``--num-beams``; SPACES: 1 on validation, 3 for the final prediction).
        test_limit: decode only the first N test texts (``--test-limit``).
    """

    seq2seq: Seq2SeqConfig = field(default_factory=Seq2SeqConfig)
    copy: bool = True
    copy_weight: float = 2.0
    noise: float = 0.15
    num_beams: int = 1
    test_limit: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.noise < 1.0:
            raise ConfigError(f"--noise: expected a probability in [0, 1), got {self.noise}")
        if self.copy_weight < 0:
            raise ConfigError(f"--copy-weight: expected a number >= 0, got {self.copy_weight}")
        for flag, value in (("--num-beams", self.num_beams), ("--test-limit", self.test_limit)):
            if value is not None and value < 1:
                raise ConfigError(f"{flag}: expected an integer >= 1, got {value}")


class CopySeq2SeqLM(Seq2SeqLM):
    """:class:`Seq2SeqLM` plus SPACES' copy head ``Linear(H, 3)`` (saved as ``copy_head.pt`` beside the weights).

    ``forward`` returns the word logits ``[B, L, V]`` (so the seq2seq evaluator works unchanged);
    :meth:`forward_with_tags` also returns the tag logits ``[B, L, 3]`` (position ``t``: the tag of token ``t+1``).
    """

    def __init__(self, backbone, tokenizer, settings: dict[str, Any] | None = None) -> None:
        super().__init__(backbone, tokenizer, settings)
        self.copy_head = nn.Linear(backbone.config.hidden_size, 3)

    def forward_with_tags(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                          attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(word logits [B, L, V], tag logits [B, L, 3])``."""
        out = self.backbone(input_ids, attention_mask, token_type_ids, mask_kind="unilm")
        return out.mlm_logits, self.copy_head(out.last_hidden_state)

    def save_pretrained(self, path: str | Path) -> None:
        """The seq2seq folder plus ``copy_head.pt`` (unless ``settings["copy"]`` is false)."""
        super().save_pretrained(path)
        if self.settings.get("copy", True):  # a model trained with --no-copy has no head worth keeping
            torch.save(self.copy_head.state_dict(), Path(path) / COPY_HEAD_FILE)

    @classmethod
    def from_pretrained(cls, path: str | Path, log: Callable[[str], None] = print) -> "CopySeq2SeqLM":
        """Load a saved model; one saved without a copy head gets none (``copy_head`` stays untrained: check
        :attr:`has_trained_copy_head`)."""
        base = Seq2SeqLM.from_pretrained(path, log)
        model = cls(base.backbone, base.tokenizer, base.settings)
        from kexue.hub import resolve_model_path
        head = resolve_model_path(path) / COPY_HEAD_FILE
        model.has_trained_copy_head = head.is_file()
        if head.is_file():
            model.copy_head.load_state_dict(torch.load(head, map_location="cpu", weights_only=True))
        return model.eval()


def noised(ids: Sequence[int], rate: float, rng: random.Random) -> list[int]:
    """``ids`` with each token replaced, with probability ``rate``, by a random token of ``ids`` itself."""
    if rate <= 0 or not ids:
        return list(ids)
    return [rng.choice(ids) if rng.random() < rate else t for t in ids]


class SpacesCollator:
    """Batches of SPACES generator examples ``{"sources": [ids, ...], "target": ids}`` (content ids).

    Per example: a source drawn from ``sources`` (training; the first one when ``train=False``), noise on the source
    and target inputs (training only), ``[CLS] source [SEP] target [SEP]``; returns the padded ``input_ids`` (noised),
    ``token_type_ids``, ``attention_mask``, ``clean_ids`` (the labels' ids) and ``copy_labels`` ``[B, L-1]`` (the tag of
    token ``t+1`` at target positions, ``-100`` elsewhere).
    """

    def __init__(self, tokenizer, max_source_length: int, max_target_length: int, noise: float = 0.0,
                 train: bool = True, seed: int = 0) -> None:
        self.tok, self.max_source, self.max_target = tokenizer, max_source_length, max_target_length
        self.noise, self.train, self.rng = noise, train, random.Random(seed)

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        rows, clean_rows, tag_rows = [], [], []
        for f in features:
            source = (self.rng.choice(f["sources"]) if self.train else f["sources"][0])[:self.max_source]
            target = f["target"][:self.max_target]
            clean = encode_pair(source, target, self.tok.cls_token_id, self.tok.sep_token_id, self.max_source,
                                self.max_target)
            rate = self.noise if self.train else 0.0
            src_in, tgt_in = noised(source, rate, self.rng), noised(target, rate, self.rng)
            row = encode_pair(src_in, tgt_in, self.tok.cls_token_id, self.tok.sep_token_id, self.max_source,
                              self.max_target)
            _, tgt_tags = copy_tags(src_in, target)
            tag_rows.append([-100] * (len(source) + 1) + tgt_tags + [0])  # label t: the tag of token t + 1
            rows.append(row)
            clean_rows.append({"input_ids": clean["input_ids"], "token_type_ids": clean["token_type_ids"]})
        batch = pad_batch(rows, pad_token_id=self.tok.pad_token_id)
        batch["clean_ids"] = pad_batch(clean_rows, pad_token_id=self.tok.pad_token_id)["input_ids"]
        width = batch["input_ids"].shape[1] - 1
        batch["copy_labels"] = torch.tensor([r + [-100] * (width - len(r)) for r in tag_rows], dtype=torch.long)
        return batch


def spaces_loss(model: nn.Module, batch: dict[str, torch.Tensor], cfg: SummarizeConfig) -> dict[str, torch.Tensor]:
    """``seq2seq loss (on the clean labels) + copy_weight × copy CE`` (the copy term only with ``cfg.copy``);
    returns ``{"loss", "lm_loss"[, "copy_loss"]}``."""
    s = cfg.seq2seq
    core = model.module if hasattr(model, "module") else model
    ids, types, mask = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
    clean = {"input_ids": batch["clean_ids"], "token_type_ids": types, "attention_mask": mask}
    if not cfg.copy:
        lm = seq2seq_loss(model(ids, types, mask), clean, s.loss, s.sparse_k, s.include_target)
        return {"loss": lm, "lm_loss": lm.detach()}
    logits, tags = core.forward_with_tags(ids, types, mask)
    lm = seq2seq_loss(logits, clean, s.loss, s.sparse_k, s.include_target)
    copy = F.cross_entropy(tags[:, :-1].reshape(-1, 3).float(), batch["copy_labels"].reshape(-1), ignore_index=-100)
    return {"loss": lm + cfg.copy_weight * copy, "lm_loss": lm.detach(), "copy_loss": copy.detach()}


@torch.no_grad()
def summarize_texts(model: CopySeq2SeqLM, texts: Sequence[str], *, max_source_length: int, max_target_length: int,
                    copy: bool, top_k: int | None = 10, num_beams: int = 1, batch_size: int = 16) -> list[str]:
    """Summaries of ``texts``: beam search (``num_beams``; 1 = greedy), the logits cut to the top-``k``, under the
    predicted copy tags when ``copy``.

    Raises:
        ConfigError: ``copy`` with a model that has no trained copy head; bad decoding options (as ``generate``).
    """
    if copy and not getattr(model, "has_trained_copy_head", True):
        raise ConfigError("--copy: this model was trained without a copy head (decode with --no-copy)")
    tok = model.tokenizer
    options = dict(strategy="beam" if num_beams > 1 else "greedy", num_beams=num_beams,
                   max_new_tokens=max_target_length + 1)
    out_texts: list[str] = []
    for start in range(0, len(texts), batch_size):
        sources = [s[:max_source_length] for s in content_ids(tok, list(texts[start:start + batch_size]))]
        batch = pad_batch([encode_source(s, tok.cls_token_id, tok.sep_token_id, max_source_length)
                           for s in sources], pad_token_id=tok.pad_token_id)
        if copy:
            out = copy_generate(model.backbone, model.copy_head, batch["input_ids"], sources,
                                end_token_id=tok.sep_token_id, top_k=top_k,
                                attention_mask=batch["attention_mask"], **options)
        else:
            cut = None if top_k is None else (lambda t, logits, rows: top_k_filter(logits, top_k))
            out = generate(model.backbone, batch["input_ids"], attention_mask=batch["attention_mask"],
                           end_token_id=tok.sep_token_id, logits_processor=cut, **options)
        out_texts += [target_text(tok, seqs[0]) for seqs in out.tolist()]
    return out_texts


def char_rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean character ROUGE-1/2/L F1 (×100, ``rouge-score``) and SPACES' weighted total ``0.2·R1+0.4·R2+0.4·RL``."""
    from rouge_score import rouge_scorer

    from kexue.tasks.summarization_data import _CharTokens

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_CharTokens())
    sums = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for p, r in zip(predictions, references):
        for k, score in scorer.score(r, p).items():
            sums[k] += score.fmeasure
    out = {k: 100 * v / max(len(references), 1) for k, v in sums.items()}
    out["weighted"] = 0.2 * out["rouge1"] + 0.4 * out["rouge2"] + 0.4 * out["rougeL"]
    return out


def make_spaces_evaluator(features, tokenizer, cfg: SummarizeConfig):
    """The seq2seq teacher-forced evaluator (loss, token accuracy, exact match) on ``features`` (first sources)."""
    s = cfg.seq2seq
    collate = SpacesCollator(tokenizer, s.max_source_length, s.max_target_length, train=False)
    return make_evaluator(features, collate, s.eval_batch_size)



# ------------------------------------------------------------------------------------------------- the recipe
SFZY_NAME = "cail2020_sfzy_sample"


def sfzy_path(data: str) -> Path | None:
    """The sfzy ``train.json`` that ``--data`` names (the registered sample, a folder holding ``train.json``, or a
    JSON-lines file whose first record has a ``text`` list), else ``None`` (source/target pairs)."""
    from kexue.data.registry import data_root

    path = data_root() / SFZY_NAME if data == SFZY_NAME else Path(data).expanduser()
    if path.is_dir():
        path = path / "train.json"
    if not path.is_file() or path.suffix not in (".json", ".jsonl"):
        return None
    with path.open(encoding="utf-8") as handle:
        first = next((line for line in handle if line.strip()), "")
    try:
        row = json.loads(first.lstrip("\ufeff"))
    except json.JSONDecodeError:
        return None
    return path if isinstance(row, dict) and isinstance(row.get("text"), list) else None


def _sfzy_examples(path: Path, cfg: SummarizeConfig, ext_cfg, trainer_cfg, log):
    """(train, dev) as ``(sources, target)`` text tuples: stage 1 run, out-of-fold ``source_1`` + oracle ``source_2``
    for training, the all-documents extractor's ``source_1`` for dev (the last fifth of the documents)."""
    from kexue.embeddings import SentenceEncoder
    from kexue.tasks.summarization_data import load_sfzy
    from kexue.tasks.summarization_extract import (clause_vectors, out_of_fold_extractions, predict_extractions,
                                                   prepare_documents, train_extractor)

    docs = prepare_documents(load_sfzy(path, cfg.seq2seq.train_limit), ext_cfg.max_clauses)
    n_dev = max(1, len(docs) // 5)
    if len(docs) - n_dev < ext_cfg.folds:
        raise ConfigError(f"--data {path}: {len(docs)} documents leave too few for --folds {ext_cfg.folds}")
    train_docs, dev_docs = docs[:-n_dev], docs[-n_dev:]
    log(f"{path}: {len(train_docs)} training documents, {len(dev_docs)} dev documents (the last fifth); "
        f"clause encoder {ext_cfg.encoder}")
    clause_vectors(docs, SentenceEncoder.from_pretrained(ext_cfg.encoder, pooling="last-avg").eval())
    folder = Path(trainer_cfg.output_dir) / "extractor"
    oof = out_of_fold_extractions(train_docs, ext_cfg, trainer_cfg, folder, log)
    final = train_extractor(train_docs, [], ext_cfg, trainer_cfg, folder / "all")
    dev_ext = predict_extractions(final, dev_docs, ext_cfg.threshold)
    train = [((d.join(e), d.join([i for i, y in enumerate(d.labels) if y])), d.summary)
             for d, e in zip(train_docs, oof)]
    return train, [((d.join(e),), d.summary) for d, e in zip(dev_docs, dev_ext)]


def _pair_examples(cfg: SummarizeConfig):
    """(train, dev, test) ``(sources, target)`` tuples of source/target data (``test``: the test split when the
    dataset has one, else dev)."""
    from kexue.data.readers.seq2seq import load_seq2seq
    from kexue.tasks.seq2seq import load_pairs_for

    train, dev = load_pairs_for(cfg.seq2seq)
    try:
        test = load_seq2seq(cfg.seq2seq.data, "test")
    except ConfigError:
        test = dev
    as_tuples = lambda pairs: [((e.source,), e.target) for e in pairs]  # noqa: E731
    return as_tuples(train), as_tuples(dev), as_tuples(test)


def train_summarize(cfg: SummarizeConfig, ext_cfg, trainer_cfg, log: Callable[[str], None] = print
                    ) -> dict[str, Any]:
    """Run SPACES on ``cfg.seq2seq.data``: extract-then-generate on sfzy documents, the generator alone on
    source/target pairs; decode the test texts with the best model and score them.

    Args:
        cfg: the generator's options; ext_cfg: :class:`~kexue.tasks.summarization_extract.ExtractorConfig`;
        trainer_cfg: the generator's trainer options (the extractor reuses its seed and device).
    Returns:
        (rank 0) ``{"data", "model", "pipeline", "copy", "loss", "train", "dev", "test_texts", "dev_metrics",
        "test_rouge", "best_dir", "optimizer_steps"}``, also in ``<output>/results.json``.
    Raises:
        ConfigError / DataFormatError: bad options or data, before the run folder is created.
    """
    from kexue.tasks.seq2seq import load_seq2seq_backbone
    from kexue.train import Trainer, prepare_run_dir
    from kexue.train.distributed import is_main_process
    from kexue.train.seed import seed_everything

    s = cfg.seq2seq
    path = sfzy_path(s.data)
    run_config = {"task": "summarize", "summarize": jsonable(asdict(cfg)), "extractor": jsonable(asdict(ext_cfg))}
    if path is None:
        train, dev, test = _pair_examples(cfg)  # data refusals before the run folder exists
        prepare_run_dir(trainer_cfg, run_config, log=log)
    else:
        prepare_run_dir(trainer_cfg, run_config, log=log)
        train, dev = _sfzy_examples(path, cfg, ext_cfg, trainer_cfg, log)
        test = dev
    if cfg.test_limit is not None:
        test = test[:cfg.test_limit]
    seed_everything(trainer_cfg.seed)
    texts = [t for sources, target in train for t in (*sources, target)]
    backbone, tokenizer = load_seq2seq_backbone(s.model, texts, s.scratch, s.max_length, log)
    settings = {"max_source_length": s.max_source_length, "max_target_length": s.max_target_length, "copy": cfg.copy}
    model = CopySeq2SeqLM(backbone, tokenizer, settings)

    def encode(examples):
        return [{"sources": content_ids(tokenizer, list(sources)), "target": content_ids(tokenizer, [target])[0]}
                for sources, target in examples]

    log(f"generator: {len(train)} training / {len(dev)} dev examples; loss {s.loss}"
        + (f" (k={s.sparse_k})" if s.loss == "sparse-softmax" else "") + f"; copy head {'on' if cfg.copy else 'off'}")
    trainer_cfg.metric_for_best = trainer_cfg.metric_for_best or "token_accuracy"
    trainer_cfg.find_unused_parameters = True
    dev_features = encode(dev)
    trainer = Trainer(model, trainer_cfg, encode(train), compute_loss=lambda m, b: spaces_loss(m, b, cfg),
                      collate_fn=SpacesCollator(tokenizer, s.max_source_length, s.max_target_length, cfg.noise,
                                                train=True, seed=trainer_cfg.seed),
                      evaluate=make_spaces_evaluator(dev_features, tokenizer, cfg), run_config=run_config)
    trainer.fit()
    if not is_main_process():
        return {}
    best_dir = Path(trainer_cfg.output_dir) / "best"
    best = CopySeq2SeqLM.from_pretrained(best_dir, log=lambda _m: None) if (best_dir / "config.json").is_file() \
        else model.eval()
    with torch.no_grad():
        metrics = make_spaces_evaluator(dev_features, tokenizer, cfg)(best.eval())
    predictions = summarize_texts(best, [sources[0] for sources, _ in test], max_source_length=s.max_source_length,
                                  max_target_length=s.max_target_length, copy=cfg.copy,
                                  top_k=s.sparse_k if s.loss == "sparse-softmax" else None,
                                  num_beams=cfg.num_beams)
    rouge = char_rouge(predictions, [target for _, target in test])
    log("test (char ROUGE F1 x100): " + ", ".join(f"{k} {v:.2f}" for k, v in rouge.items()))
    out = Path(trainer_cfg.output_dir)
    with (out / "predictions.jsonl").open("w", encoding="utf-8") as handle:
        for p, (_, target) in zip(predictions, test):
            handle.write(json.dumps({"prediction": p, "reference": target}, ensure_ascii=False) + "\n")
    results = {"data": s.data, "model": s.model, "pipeline": "extract-then-generate" if path else "generate",
               "copy": cfg.copy, "loss": s.loss, "train": len(train), "dev": len(dev), "test_texts": len(test),
               "dev_metrics": metrics, "test_rouge": rouge, "best_dir": str(best_dir),
               "optimizer_steps": trainer.state.global_step}
    (out / "results.json").write_text(json.dumps(jsonable(results), indent=2, allow_nan=False), encoding="utf-8")
    return results
