"""FewCLUE (Xu et al., arXiv 2107.07498): the nine tasks, five folds plus ``few_all``, ``test_public`` and
``unlabeled``, read into one typed record per line.

Folder ``$KEXUE_DATA/fewclue/<task>/`` (CLUEbenchmark/FewCLUE ``datasets/``; see its SOURCE.md):
``train_{0..4}.json``, ``dev_{0..4}.json``, ``train_few_all.json``, ``dev_few_all.json``, ``test_public.json`` (the
labelled public test) and, for eprstmt / bustm / tnews / chid, ``unlabeled.json``. JSON lines, CRLF accepted.

What each record holds (``label`` is an index into :func:`fewclue_labels`, ``label_name`` the file's value):

| task | text_a | text_b | labels |
|---|---|---|---|
| eprstmt | sentence | — | Negative, Positive |
| tnews | sentence | — | 15 news categories (``label_index2en2zh.json``; ``label_names`` Chinese) |
| iflytek | sentence | — | 119 app categories (ids 0..118, names from ``label_des``) |
| csldcp | content | — | 67 disciplines (``labels_all.txt``) |
| bustm | sentence1 | sentence2 | 0, 1 (1 = same intent) |
| ocnli | sentence1 | sentence2 | entailment, neutral, contradiction |
| csl | abst | keywords joined by "，" | 0, 1 (1 = real keywords) |
| cluewsc | text | — | false, true; ``spans = (span1_text, span2_text)``: does span2 refer to span1? |
| chid | content (``#idiom#`` = the blank) | — | index of the answer in ``candidates`` (7 idioms) |
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from kexue.data.readers.text_lines import check_file, iter_lines
from kexue.data.registry import data_root
from kexue.errors import ConfigError, DataFormatError

FEWCLUE_TASKS = ("eprstmt", "tnews", "iflytek", "csldcp", "bustm", "ocnli", "csl", "cluewsc", "chid")
FOLDS = ("0", "1", "2", "3", "4", "few_all")
PAIR_TASKS = ("bustm", "ocnli", "csl")
_FIXED_LABELS = {"eprstmt": ["Negative", "Positive"], "bustm": ["0", "1"], "csl": ["0", "1"],
                 "ocnli": ["entailment", "neutral", "contradiction"], "cluewsc": ["false", "true"],
                 "chid": [str(i) for i in range(7)]}


@dataclass(frozen=True)
class FewCLUEExample:
    """One FewCLUE record (see the module table).

    Attributes:
        task, text_a, text_b (pair tasks, else ``None``), label (class index, ``None`` when unlabelled),
        label_name (the file's label value), candidates (chid's idioms), spans (cluewsc's two spans), id, line.
    """

    task: str
    text_a: str
    text_b: str | None = None
    label: int | None = None
    label_name: str | None = None
    candidates: tuple[str, ...] | None = None
    spans: tuple[str, str] | None = None
    id: str | None = None
    line: int = field(default=0, compare=False)


def fewclue_file(task: str, split: str, fold: str | int = 0, root: str | Path | None = None) -> Path:
    """The file of ``split`` (``train``, ``dev``, ``test`` = test_public, ``unlabeled``) and ``fold`` (0-4 or
    ``few_all``; ignored for test/unlabeled).

    Raises:
        ConfigError: an unknown task (``--task``), split or fold (``--fold``); a missing file.
    """
    if task not in FEWCLUE_TASKS:
        raise ConfigError(f"--task: expected one of {', '.join(FEWCLUE_TASKS)}, got {task!r}")
    fold = str(fold)
    if split in ("train", "dev"):
        if fold not in FOLDS:
            raise ConfigError(f"--fold: expected one of {', '.join(FOLDS)}, got {fold!r}")
        name = f"{split}_{fold}.json"
    elif split in ("test", "test_public"):
        name = "test_public.json"
    elif split in ("unlabeled", "unlabelled"):
        name = "unlabeled.json"
    else:
        raise ConfigError(f"FewCLUE split: expected train, dev, test or unlabeled, got {split!r}")
    path = data_root(root) / "fewclue" / task / name
    if not path.is_file():
        raise ConfigError(f"FewCLUE {task}: expected {path} ($KEXUE_DATA/fewclue/{task}/{name}), not found")
    return path


@lru_cache(maxsize=None)
def _labels(task: str, folder: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    base = Path(folder)
    if task in _FIXED_LABELS:
        names = _FIXED_LABELS[task]
        return tuple(names), tuple(names)
    if task == "tnews":
        path = check_file(base / "label_index2en2zh.json")
        rows = [json.loads(t) for _, t in iter_lines(path) if t.strip()]
        return tuple(str(r["label"]) for r in rows), tuple(r["label_zh"] for r in rows)
    if task == "csldcp":
        path = check_file(base / "labels_all.txt")
        names = [t.strip() for _, t in iter_lines(path) if t.strip()]
        return tuple(names), tuple(names)
    found: dict[int, str] = {}                                   # iflytek: ids and names from every labelled file
    for path in sorted(base.glob("*.json")):
        if path.name == "unlabeled.json":
            continue
        for _, t in iter_lines(path):
            if t.strip():
                r = json.loads(t)
                found[int(r["label"])] = r["label_des"]
    ids = sorted(found)
    return tuple(str(i) for i in ids), tuple(found[i] for i in ids)


def fewclue_labels(task: str, root: str | Path | None = None) -> list[str]:
    """The task's label values in class-index order (the ``label`` field's values)."""
    fewclue_file(task, "dev", "few_all", root)                     # validates the task and the folder
    return list(_labels(task, str(data_root(root) / "fewclue" / task))[0])


def fewclue_label_names(task: str, root: str | Path | None = None) -> list[str]:
    """Human-readable (Chinese where the data has it) names of the labels, same order as :func:`fewclue_labels`."""
    fewclue_file(task, "dev", "few_all", root)
    return list(_labels(task, str(data_root(root) / "fewclue" / task))[1])


def _text(record: dict, key: str, path: Path, line: int) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DataFormatError(path, line, f"expected a non-empty string {key!r}, found {value!r}")
    return value


def _parse(task: str, record: dict, labels: list[str], path: Path, line: int, labelled: bool) -> FewCLUEExample:
    text_b = candidates = spans = None
    if task in ("eprstmt", "tnews", "iflytek"):
        text_a = _text(record, "sentence", path, line)
    elif task == "csldcp":
        text_a = _text(record, "content", path, line)
    elif task in ("bustm", "ocnli"):
        text_a, text_b = _text(record, "sentence1", path, line), _text(record, "sentence2", path, line)
    elif task == "csl":
        text_a = _text(record, "abst", path, line)
        keywords = record.get("keyword")
        if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
            raise DataFormatError(path, line, f"expected 'keyword' to be a list of strings, found {keywords!r}")
        text_b = "，".join(keywords)
    elif task == "cluewsc":
        text_a = _text(record, "text", path, line)
        target = record.get("target") or {}
        spans = (str(target.get("span1_text", "")), str(target.get("span2_text", "")))
        if not all(spans):
            raise DataFormatError(path, line, "expected target.span1_text and target.span2_text")
    else:
        text_a = _text(record, "content", path, line)
        candidates = tuple(record.get("candidates") or ())
        if len(candidates) != 7 or "#idiom#" not in text_a:
            raise DataFormatError(path, line, "expected 7 candidates and an #idiom# blank in 'content'")
    raw = record.get("answer" if task == "chid" else "label")
    label = name = None
    if raw is not None and labelled:
        name = str(raw)
        if name not in labels:
            raise DataFormatError(path, line, f"label: expected one of {', '.join(labels[:20])}"
                                              f"{' ...' if len(labels) > 20 else ''}, found {name!r}")
        label = labels.index(name)
    elif labelled:
        raise DataFormatError(path, line, f"expected a {'answer' if task == 'chid' else 'label'} in this labelled "
                                          "split")
    rid = record.get("id", record.get("idx"))
    return FewCLUEExample(task, text_a, text_b, label, name, candidates, spans, None if rid is None else str(rid), line)


def read_fewclue(task: str, split: str = "train", fold: str | int = 0, root: str | Path | None = None
                 ) -> list[FewCLUEExample]:
    """Read one FewCLUE file (see :func:`fewclue_file`); ``unlabeled`` records carry ``label=None``.

    Raises:
        ConfigError: unknown task / split / fold, a missing file. DataFormatError(path, line): invalid JSON or
            UTF-8, a missing text field, a label outside the task's label set.
    """
    path = fewclue_file(task, split, fold, root)
    labels = fewclue_labels(task, root)
    labelled = split not in ("unlabeled", "unlabelled")
    out = []
    for line, raw in iter_lines(path):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as err:
            raise DataFormatError(path, line, f"invalid JSON: {err.msg}") from None
        if not isinstance(record, dict):
            raise DataFormatError(path, line, "expected a JSON object")
        out.append(_parse(task, record, labels, path, line, labelled))
    if not out:
        raise DataFormatError(path, None, "expected at least one record, found none")
    return out
