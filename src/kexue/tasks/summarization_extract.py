"""SPACES stage 1: the clause extractor (DGCNN over frozen clause vectors), trained with out-of-fold predictions.

Each document is cut into clauses (:func:`~kexue.tasks.summarization_data.split_clauses`, the last ``max_clauses``
kept); the oracle labels come from the ROUGE-weighted alignment with the reference summary. A frozen sentence
encoder (:class:`kexue.embeddings.SentenceEncoder`, masked mean pooling of the last layer) turns every clause into a
vector; :class:`kexue.nn.dgcnn.DGCNNExtractor` scores the clause sequence (BCE, the shared Trainer). ``folds``-fold
cross-validation gives every training document an extraction by a model that never saw it (SPACES: 15 folds), the
generator's ``source_1``; a last model trained on all documents extracts the dev / new documents.

Source: "SPACES:'抽取-生成'式长文本摘要(法研杯总结)", https://kexue.fm/archives/8046 (bojone/SPACES
``extract_vectorize.py``, ``extract_model.py``); spec arch §12 steps 1-2.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kexue.errors import ConfigError
from kexue.nn.dgcnn import DGCNNExtractor
from kexue.tasks.summarization_data import SfzyDocument, oracle_extract, split_clauses
from kexue.train import Trainer, TrainerConfig

__all__ = ["ExtractorConfig", "ClauseDoc", "prepare_documents", "clause_vectors", "train_extractor",
           "predict_extractions", "out_of_fold_extractions"]


@dataclass
class ExtractorConfig:
    """Options of the extraction stage.

    Args:
        encoder: the frozen clause encoder (alias or folder; ``--encoder``). max_clauses: clauses kept from the end
            of each document (``--max-clauses``, SPACES: 256). folds: cross-validation folds for the out-of-fold
            extractions (``--folds``, >= 2; SPACES: 15). threshold: select clauses with ``p > threshold``
            (``--threshold``, SPACES: 0.2). epochs / batch_size / lr: the DGCNN's training (SPACES: 20, 64, Adam 1e-3).
        hidden: DGCNN channels (SPACES: 384).
    """

    encoder: str = "kexue-zh-mini"
    max_clauses: int = 256
    folds: int = 2
    threshold: float = 0.2
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    hidden: int = 384

    def __post_init__(self) -> None:
        for flag, value, low in (("--max-clauses", self.max_clauses, 1), ("--folds", self.folds, 2),
                                 ("--extractor-epochs", self.epochs, 1), ("--hidden", self.hidden, 1)):
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"{flag}: expected an integer >= {low}, got {value!r}")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"--threshold: expected a probability in (0, 1), got {self.threshold}")


@dataclass
class ClauseDoc:
    """A document as clauses: ``clauses``, oracle ``labels`` (0/1 per clause), the ``summary`` and its clause
    vectors ``vectors`` ``[n, D]`` float32 (filled by :func:`clause_vectors`)."""

    clauses: list[str]
    labels: list[int]
    summary: str
    vectors: np.ndarray | None = None

    def join(self, selected: Sequence[int]) -> str:
        """The selected clauses, in document order, as one source text."""
        return "".join(self.clauses[i] for i in sorted(selected))


def prepare_documents(docs: Sequence[SfzyDocument], max_clauses: int,
                      scorer: Callable[[str, str], float] | None = None) -> list[ClauseDoc]:
    """Clauses (the last ``max_clauses``) and oracle labels of each document with a summary.

    Raises:
        ConfigError: a document without a summary (test data cannot train the extractor).
    """
    out = []
    for doc in docs:
        if doc.summary is None:
            raise ConfigError(f"--data: document {doc.id} has no summary (training needs the reference summaries)")
        clauses = split_clauses("".join(doc.sentences))[-max_clauses:]
        chosen = set(oracle_extract(clauses, split_clauses(doc.summary), scorer))
        out.append(ClauseDoc(clauses, [int(i in chosen) for i in range(len(clauses))], doc.summary))
    return out


def clause_vectors(docs: Sequence[ClauseDoc], encoder, batch_size: int = 64) -> None:
    """Fill each document's ``vectors`` with ``encoder.encode(clauses)`` (a :class:`SentenceEncoder`, frozen)."""
    flat = [c for d in docs for c in d.clauses]
    vectors = encoder.encode(flat, batch_size=batch_size) if flat else np.zeros((0, encoder.hidden_size))
    start = 0
    for d in docs:
        d.vectors = np.asarray(vectors[start:start + len(d.clauses)], dtype=np.float32)
        start += len(d.clauses)


def _collate(features: Sequence[ClauseDoc]) -> dict[str, torch.Tensor]:
    length = max(len(f.clauses) for f in features)
    dim = features[0].vectors.shape[1]
    vectors = torch.zeros(len(features), length, dim)
    mask = torch.zeros(len(features), length, dtype=torch.long)
    labels = torch.zeros(len(features), length)
    for b, f in enumerate(features):
        n = len(f.clauses)
        vectors[b, :n] = torch.from_numpy(f.vectors)
        mask[b, :n] = 1
        labels[b, :n] = torch.tensor(f.labels, dtype=torch.float)
    return {"vectors": vectors, "mask": mask, "labels": labels}


def _loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    logits = model(batch["vectors"], batch["mask"])
    keep = batch["mask"].bool()
    return F.binary_cross_entropy_with_logits(logits[keep], batch["labels"][keep])


@torch.no_grad()
def predict_extractions(model: DGCNNExtractor, docs: Sequence[ClauseDoc], threshold: float) -> list[list[int]]:
    """Indices of the clauses with ``sigmoid(logit) > threshold`` per document (the best clause when none is)."""
    model.eval()
    out = []
    for d in docs:
        batch = _collate([d])
        p = torch.sigmoid(model(batch["vectors"].to(next(model.parameters()).device),
                                batch["mask"].to(next(model.parameters()).device)))[0].cpu()
        chosen = (p > threshold).nonzero()[:, 0].tolist()
        out.append(chosen or [int(p.argmax())])
    return out


def _f1(predicted: Sequence[Sequence[int]], docs: Sequence[ClauseDoc]) -> float:
    tp = sum(len(set(p) & {i for i, y in enumerate(d.labels) if y}) for p, d in zip(predicted, docs))
    n_pred, n_gold = sum(len(p) for p in predicted), sum(sum(d.labels) for d in docs)
    return 2 * tp / (n_pred + n_gold) if n_pred + n_gold else 0.0


def train_extractor(train: Sequence[ClauseDoc], dev: Sequence[ClauseDoc], cfg: ExtractorConfig,
                    trainer_cfg: TrainerConfig, output_dir: Path) -> DGCNNExtractor:
    """Train a DGCNN extractor on ``train`` in ``output_dir`` (``best/`` by clause F1 on ``dev``); returns the
    best model (the last one when ``dev`` is empty)."""
    model = DGCNNExtractor(input_size=train[0].vectors.shape[1], hidden=cfg.hidden)

    def evaluate(m: nn.Module) -> dict[str, float]:
        return {"f1": _f1(predict_extractions(m, dev, cfg.threshold), dev)}

    tcfg = dataclasses.replace(trainer_cfg, output_dir=output_dir, epochs=cfg.epochs, max_steps=None,
                               batch_size=cfg.batch_size, learning_rate=cfg.lr, weight_decay=0.0, warmup_ratio=0.0,
                               eval_every=None, metric_for_best="f1" if dev else None, save_every=None,
                               progress_bar=False)
    trainer = Trainer(model, tcfg, list(train), compute_loss=_loss, collate_fn=_collate,
                      evaluate=evaluate if dev else None)
    trainer.fit()
    best = output_dir / "best" / "model.safetensors"
    if best.is_file():
        from safetensors.torch import load_model
        load_model(model, str(best))
    return model.eval()


def out_of_fold_extractions(docs: Sequence[ClauseDoc], cfg: ExtractorConfig, trainer_cfg: TrainerConfig,
                            folder: Path, log: Callable[[str], None] = print) -> list[list[int]]:
    """Each document's extraction by the fold model that did not train on it (``folder/fold-k`` run folders).

    Raises:
        ConfigError: fewer documents than ``cfg.folds``.
    """
    if len(docs) < cfg.folds:
        raise ConfigError(f"--folds {cfg.folds}: only {len(docs)} training documents")
    out: list[list[int] | None] = [None] * len(docs)
    for k in range(cfg.folds):
        held = [i for i in range(len(docs)) if i % cfg.folds == k]
        rest = [docs[i] for i in range(len(docs)) if i % cfg.folds != k]
        model = train_extractor(rest, [docs[i] for i in held], cfg, trainer_cfg, folder / f"fold-{k}")
        for i, chosen in zip(held, predict_extractions(model, [docs[i] for i in held], cfg.threshold)):
            out[i] = chosen
    log(f"extractor: out-of-fold clause F1 {_f1(out, docs):.4f} over {len(docs)} documents ({cfg.folds} folds)")
    return out
