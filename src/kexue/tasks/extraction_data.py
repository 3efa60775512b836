"""Datasets of the extraction recipes (NER, relations, events): names under ``$KEXUE_DATA`` or user folders, and
how each one is split here.

Registered names and their splits on this machine (each folder's SOURCE.md gives the counts):

===================  =========  ===================================  ===============================  ==============
name                 task       train                                dev (selects ``best/``)          test
===================  =========  ===================================  ===============================  ==============
conll2003            ner        ``bio/train.txt``                    ``bio/valid.txt``                ``bio/test.txt``
people_daily_ner     ner        ``example.dev`` (first 90%)          ``example.dev`` (last 10%)       ``example.test``
msra_ner             ner        ``val.*`` (first 90%)                ``val.*`` (last 10%)             ``test.*``
cluener2020          ner        ``train.json``                       ``dev.json``                     — (unlabelled)
duie2.0_subset       relation   ``train_data_5000.json`` (90%)       the last 10%                     —
cmeie_subset         relation   ``CMeIE_train.json``                 ``CMeIE_dev.json``               — (unlabelled)
duee1.0              event      ``sample_data.json``                 ``dev.json``                     — (unlabelled)
===================  =========  ===================================  ===============================  ==============

The train files of people_daily_ner / msra_ner and the full DuIE / DuEE train sets are not on this machine; where a
set has no dev file its train file is cut at a fixed point (first 90% / last 10%, no shuffling) so that the split is
reproducible. DuIE and DuEE are internal-use-only data (Baidu participant agreement): use them locally, never ship them.

A user folder (``--data path``) holds one file per split named ``train.*``, ``dev.*`` (or ``valid.*``) and
optionally ``test.*``; NER files ending in ``.json`` are CLUENER JSON lines, others CoNLL BIO columns (tokens are
joined with ``""`` when every token is one character — Chinese one-character-per-line files — else with ``" "``);
relation and event folders also hold their schema file (a ``*schema*.json``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kexue.data.readers.event import EventSchema, read_duee, read_event_schema
from kexue.data.readers.ner import read_cluener, read_conll_bio, read_msra_ner
from kexue.data.readers.relation import RelationSchema, read_relation_data, read_relation_schema
from kexue.data.readers.text_lines import iter_lines
from kexue.data.registry import data_root
from kexue.errors import ConfigError, DataFormatError

DEV_FRACTION = 0.1
"""Fraction of a train file held out as dev when a dataset ships no dev file (the last 10%)."""

# name -> (task, {split: file spec}); a split spec "holdout" means "the last 10% of train".
_NER = {
    "conll2003": {"train": ("bio", "bio/train.txt"), "dev": ("bio", "bio/valid.txt"), "test": ("bio", "bio/test.txt")},
    "people_daily_ner": {"train": ("bio", "example.dev"), "dev": "holdout", "test": ("bio", "example.test")},
    "msra_ner": {"train": ("msra", "val"), "dev": "holdout", "test": ("msra", "test")},
    "cluener2020": {"train": ("cluener", "train.json"), "dev": ("cluener", "dev.json")},
}
_RELATION = {
    "duie2.0_subset": ({"train": "train_data_5000.json", "dev": "holdout"}, "duie_schema.json"),
    "cmeie_subset": ({"train": "CMeIE_train.json", "dev": "CMeIE_dev.json"}, "53_schemas.json"),
}
_EVENT = {
    "duee1.0": ({"train": "sample_data.json", "dev": "dev.json"}, "event_schema.json"),
}
EXTRACTION_DATASETS: dict[str, str] = {**{n: "ner" for n in _NER}, **{n: "relation" for n in _RELATION},
                                       **{n: "event" for n in _EVENT}}
"""Registered extraction dataset name -> task (``ner``, ``relation``, ``event``)."""


@dataclass
class ExtractionSplits:
    """Examples of one dataset: ``train`` (possibly empty), ``dev`` and ``test`` (``None`` when absent here), the
    schema (relation / event; ``None`` for NER), a one-line description of the split used, and whether dev is the
    held-out end of the train file."""

    name: str
    train: list[Any]
    dev: list[Any] | None
    test: list[Any] | None
    schema: RelationSchema | EventSchema | None
    description: str
    held_out_dev: bool = False


def _cut(examples: list[Any]) -> tuple[list[Any], list[Any]]:
    n_dev = max(1, math.ceil(len(examples) * DEV_FRACTION))
    if len(examples) < 2:
        raise ConfigError(f"cannot hold out a dev split from {len(examples)} example(s)")
    return examples[:-n_dev], examples[-n_dev:]


def _bio_sep(path: Path) -> str:
    """``""`` when every token of a BIO file is one character (Chinese, one character per line), else ``" "``."""
    for number, raw in iter_lines(path, "NER file"):
        cols = raw.split()
        if cols and len(cols[0]) != 1 and cols[0] != "-DOCSTART-":
            return " "
        if number > 5000:
            break
    return ""


def _read_ner(kind: str, path: Path, lenient_bio: bool = False) -> list[Any]:
    if kind == "cluener":
        return read_cluener(path)
    if kind == "msra":
        return read_msra_ner(path.parent / f"{path.name}.sentences.txt", path.parent / f"{path.name}.tags.txt",
                             lenient_bio=lenient_bio)
    return read_conll_bio(path, sep=_bio_sep(path), lenient_bio=lenient_bio)


def _user_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and "schema" not in p.name.lower()):
        stem = path.name.split(".")[0].lower()
        split = {"train": "train", "dev": "dev", "valid": "dev", "validation": "dev", "test": "test"}.get(stem)
        if split is not None:
            if split in files:
                raise ConfigError(f"--data {folder}: two files for split {split!r}: {files[split].name}, {path.name}")
            files[split] = path
    if "train" not in files:
        raise ConfigError(f"--data {folder}: expected a train.* file (and dev.*/valid.*, optionally test.*)")
    return files


def _schema_file(folder: Path) -> Path:
    found = sorted(p for p in folder.iterdir() if p.is_file() and "schema" in p.name.lower())
    if len(found) != 1:
        raise ConfigError(f"--data {folder}: expected exactly one *schema*.json file, found "
                          f"{[p.name for p in found] or 'none'}")
    return found[0]


def _locate(data: str, task: str, root: str | Path | None) -> tuple[Path, bool]:
    """The dataset folder and whether ``data`` is a registered name."""
    if data in EXTRACTION_DATASETS:
        if EXTRACTION_DATASETS[data] != task:
            raise ConfigError(f"--data {data}: a {EXTRACTION_DATASETS[data]} dataset, not a {task} one")
        folder = data_root(root) / data
        if not folder.is_dir():
            raise ConfigError(f"dataset {data!r}: expected the folder {folder} ($KEXUE_DATA/{data}), not found")
        return folder, True
    folder = Path(data).expanduser()
    if folder.is_file():
        raise ConfigError(f"--data {data}: a file; a {task} dataset is a folder with train.*, dev.* (or valid.*) and "
                          f"optionally test.* files" + ("" if task == "ner" else " and its *schema*.json"))
    if not folder.is_dir():
        known = ", ".join(n for n, t in EXTRACTION_DATASETS.items() if t == task)
        raise ConfigError(f"unknown {task} dataset {data!r}: not a registered name ({known}) and no such folder")
    return folder, False


def load_extraction_splits(task: str, data: str, *, with_train: bool = True, train_limit: int | None = None,
                           eval_limit: int | None = None, root: str | Path | None = None,
                           lenient_bio: bool = False) -> ExtractionSplits:
    """Read the splits of an extraction dataset (see the module docstring for what each split is).

    Args:
        task: ``"ner"``, ``"relation"`` or ``"event"``.
        data: a registered name or a folder.
        with_train: read the train split (``False``: only what evaluation needs; the held-out dev is still cut).
        train_limit / eval_limit: keep the first N examples of train / of dev and test.
        root: datasets folder (default ``$KEXUE_DATA``).
        lenient_bio: NER BIO files: read an ``I-X`` that does not continue an entity as a new entity (conlleval's
            rule, ``--lenient-bio``) instead of refusing the file with its line.

    Raises:
        ConfigError: unknown name or missing folder/file, a dataset of another task. DataFormatError: bad lines.
    """
    folder, registered = _locate(data, task, root)
    schema = None
    if registered and task == "ner":
        spec = _NER[data]
        read = {s: (lambda v=v: _read_ner(v[0], folder / v[1], lenient_bio)) for s, v in spec.items()
                if v != "holdout"}
    elif registered:
        files, schema_name = (_RELATION if task == "relation" else _EVENT)[data]
        schema_path = folder / schema_name
        spec = files
        read = {s: (lambda f=f: folder / f) for s, f in files.items() if f != "holdout"}
    else:
        user = _user_files(folder)
        spec = {s: "file" for s in user} | ({} if "dev" in user else {"dev": "holdout"})
        if task == "ner":
            read = {s: (lambda p=p: _read_ner("cluener" if p.suffix == ".json" else "bio", p, lenient_bio))
                    for s, p in user.items()}
        else:
            schema_path = _schema_file(folder)
            read = {s: (lambda p=p: p) for s, p in user.items()}
    if task != "ner":
        schema = read_relation_schema(schema_path) if task == "relation" else read_event_schema(schema_path)
        reader = read_relation_data if task == "relation" else read_duee
        read = {s: (lambda f=f: reader(f(), schema)) for s, f in read.items()}
    out: dict[str, list[Any] | None] = {"train": None, "dev": None, "test": None}
    if spec.get("dev") == "holdout":
        out["train"], out["dev"] = _cut(read["train"]())
    else:
        if with_train:
            out["train"] = read["train"]()
        if "dev" in read:
            out["dev"] = read["dev"]()
    if "test" in read:
        out["test"] = read["test"]()
    train = (out["train"] or []) if with_train else []
    if with_train and not train:
        raise DataFormatError(folder, None, "the train split has no examples")
    full = ExtractionSplits(str(data), train, out["dev"], out["test"], schema, "", spec.get("dev") == "holdout")
    return limit_splits(full, train_limit, eval_limit)


def limit_splits(splits: ExtractionSplits, train_limit: int | None = None, eval_limit: int | None = None
                 ) -> ExtractionSplits:
    """The first ``train_limit`` train and ``eval_limit`` dev/test examples of ``splits`` (``None``: all); the
    description is rewritten with the new counts."""
    def cut(examples: list[Any] | None, n: int | None) -> list[Any] | None:
        return examples if examples is None or n is None else examples[:n]

    train, dev, test = cut(splits.train, train_limit), cut(splits.dev, eval_limit), cut(splits.test, eval_limit)
    held = " (dev = last 10% of the train file)" if splits.held_out_dev else ""
    description = (f"{splits.name}: train {len(train)}, dev {len(dev) if dev is not None else '-'}, "
                   f"test {len(test) if test is not None else '-'}{held}")
    return ExtractionSplits(splits.name, train, dev, test, splits.schema, description, splits.held_out_dev)
