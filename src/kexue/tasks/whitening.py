"""Choosing and fitting the whitening of ``kexue eval sts --whitening none|full|K --fit-on ...`` and ``kexue whiten``.

The fitting data is always named (``--fit-on``), never implied:

* ``task``: every sentence of the evaluated dataset (all its splits present, both sides, no labels): the articles'
  protocol (https://kexue.fm/archives/8321), **transductive**, and reported as such;
* ``train``: both sides of the dataset's training split (labels unused);
* a path: a file of sentences, one per line (or a pair dataset, both sides of its training split).

Source: "无监督语义相似度哪家强?", https://kexue.fm/archives/8321; the transform itself is
:mod:`kexue.embeddings.whitening`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from kexue.data.readers.text_lines import iter_lines
from kexue.data.registry import DATASETS, canonical_split, data_root, load_pairs, resolve_dataset
from kexue.embeddings.whitening import Whitening, fit_whitening_on_texts, parse_whitening
from kexue.errors import ConfigError, DataFormatError

FIT_ON_CHOICES = ("task", "train")


def read_sentence_lines(path: str | Path) -> list[str]:
    """The non-blank lines of a UTF-8 text file, one sentence per line (surrounding whitespace stripped).

    Raises:
        ConfigError: the file does not exist. DataFormatError: invalid UTF-8 (``file:line``), or no sentence at all.
    """
    path = Path(path).expanduser()
    sentences = [line.strip() for _, line in iter_lines(path, "sentence file") if line.strip()]
    if not sentences:
        raise DataFormatError(str(path), None, "expected one sentence per line, found no sentence")
    return sentences


def _under_root(name: str) -> Path | None:
    """``$KEXUE_DATA/name`` when that folder exists (``None`` also when ``$KEXUE_DATA`` is unset)."""
    try:
        folder = data_root() / name
    except ConfigError:
        return None
    return folder if folder.is_dir() else None


def _split_sentences(data: str, split: str) -> list[str]:
    return [t for p in load_pairs(data, split) for t in (p.text_a, p.text_b)]


def _has_split(data: str, split: str) -> bool:
    if data in DATASETS:
        return canonical_split(split) in DATASETS[data].splits
    try:
        resolve_dataset(data, split)
    except ConfigError:
        return False
    return True


def load_sentences(data: str, split: str = "train") -> list[str]:
    """Raw sentences of ``data``: both sides of a pair dataset's ``split`` (a registered name or a folder; labels are
    not read), or the lines of a text file (also a name under ``$KEXUE_DATA`` whose folder holds one ``.txt``).

    Raises:
        ConfigError: an unknown name or a missing file. DataFormatError: a malformed line.
    """
    if data in DATASETS:
        return _split_sentences(data, split)
    path = Path(data).expanduser()
    if not path.exists() and _under_root(data) is not None:
        path = _under_root(data)
    if path.is_dir():
        texts = sorted(path.glob("*.txt"))
        if len(texts) == 1 and not _has_split(str(path), split):
            return read_sentence_lines(texts[0])
        return _split_sentences(str(path), split)
    if not path.is_file():
        raise ConfigError(f"--data {data}: neither a dataset name under $KEXUE_DATA nor an existing path")
    return read_sentence_lines(path)


def fitting_sentences(fit_on: str, data: str) -> tuple[list[str], str, bool]:
    """``(sentences, description, transductive)`` for ``--fit-on`` (see the module rules).

    Raises:
        ConfigError: ``--fit-on train`` on data without a training split; an unknown ``--fit-on`` value.
    """
    if fit_on == "task":
        splits = [s for s in ("train", "dev", "test") if _has_split(data, s)]
        if not splits:  # a single file: the file itself
            texts = [t for p in load_pairs(data, "train") for t in (p.text_a, p.text_b)]
            return texts, f"{data} itself (transductive)", True
        texts = [t for s in splits for t in _split_sentences(data, s)]
        return texts, f"{data} {'+'.join(splits)}, both sides, no labels (transductive)", True
    if fit_on == "train":
        if not _has_split(data, "train"):
            raise ConfigError(f"--fit-on train: {data} has no training split; use --fit-on task or a file of "
                              "sentences")
        return _split_sentences(data, "train"), f"{data} train, both sides", False
    if Path(fit_on).expanduser().exists() or _under_root(fit_on) is not None:
        texts = load_sentences(fit_on)
        return texts, f"{fit_on}", False
    raise ConfigError(f"--fit-on: expected task, train or a file of sentences, got {fit_on!r} (not found)")


def choose_whitening(encoder, whitening: str | None, fit_on: str | None, data: str, *, batch_size: int = 64,
                     eps: float = 0.0, log: Callable[[str], None] = print) -> Whitening | None:
    """The whitening to evaluate ``encoder`` with: ``--whitening`` unset keeps the one saved with the model (if any),
    ``none`` removes it, ``full`` / ``K`` fits a new one on ``--fit-on``.

    Raises:
        ConfigError: ``--whitening full|K`` without ``--fit-on``, ``--fit-on`` without ``--whitening full|K``, or the
            rank errors of :func:`kexue.embeddings.whitening.fit_whitening`.
    """
    choice = parse_whitening(whitening)
    if choice in (None, "none"):
        if fit_on is not None:
            raise ConfigError("--fit-on: only used with --whitening full or --whitening K")
        return None if choice == "none" else encoder.whitening
    if fit_on is None:
        raise ConfigError(f"--whitening {whitening}: say what to fit it on with --fit-on task (the evaluated data "
                          "itself, transductive, as the articles), --fit-on train, or --fit-on FILE")
    texts, description, transductive = fitting_sentences(fit_on, data)
    fitted = fit_whitening_on_texts(encoder, texts, None if choice == "full" else int(choice), eps,
                                    fit_on=description, transductive=transductive, batch_size=batch_size)
    log(fitted.describe())
    return fitted


def whitening_report(whitening: Whitening | None) -> dict:
    """The ``"whitening"`` entry of a results object: components, fitting data and protocol (or ``none``)."""
    if whitening is None:
        return {"components": "none"}
    return {"components": whitening.n_components, "input_dim": whitening.input_dim, "fit_on": whitening.fit_on,
            "transductive": whitening.transductive, "num_vectors": whitening.num_vectors, "rank": whitening.rank}


def unique(texts: Sequence[str]) -> list[str]:
    """``texts`` without repeats, first occurrence order."""
    return list(dict.fromkeys(texts))
