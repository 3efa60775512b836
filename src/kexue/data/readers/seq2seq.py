"""Readers for sequence-to-sequence data: source/target pairs (TSV or JSON lines) and KgCLUE questions.

Registered datasets (folders under ``$KEXUE_DATA``, sizes and licences in each SOURCE.md):

* ``lcsts_clge`` — ``{train,val,test}.tsv``, ``summary \\t text`` (target first): the text is the source, the
  summary the target. Research-only licence (LCSTS); keep results internal.
* ``csl_title`` — abstract → title. No CSL train split is stored here, so this registry uses the CSL benchmark's
  ``benchmark_ts/dev.tsv`` (``prompt \\t abstract \\t title``, 1,000 rows) as **train**, CLGE's
  ``clge/val.tsv`` (``title \\t abstract``) as **dev** and ``clge/test.tsv`` as **test**; the two copies share no
  title (SOURCE.md), so train and dev/test do not overlap.
* ``kgclue`` — ``{train,dev,test_public}.json``, JSON lines ``{"id", "question", "answer": "S ||| P ||| O"}``;
  ``test`` here means ``test_public.json`` (the private ``test.json`` has no answers and is not read).

Your own data: a ``.tsv`` / ``.txt`` file with ``source \\t target`` lines, or a ``.jsonl`` / ``.json`` file of
``{"source": ..., "target": ...}`` objects (one per line); or a folder with one such file per split (``train.*``,
``dev.*`` / ``val.*``, ``test_public.*`` / ``test.*``), which is also how a KgCLUE-format folder of your own is read.
A malformed line raises :class:`~kexue.errors.DataFormatError` naming the file and line; nothing is skipped
silently.

Used by the UniLM seq2seq recipes (https://kexue.fm/archives/6933, https://kexue.fm/archives/8802).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from kexue.data.readers.text_lines import iter_lines
from kexue.data.registry import canonical_split, data_root
from kexue.errors import ConfigError, DataFormatError

__all__ = ["Seq2SeqExample", "KgclueExample", "Seq2SeqDataset", "SEQ2SEQ_DATASETS", "read_seq2seq_tsv",
           "read_seq2seq_jsonl", "read_seq2seq", "load_seq2seq", "split_mention", "read_kgclue", "load_kgclue",
           "resolve_seq2seq"]


@dataclass(frozen=True, slots=True)
class Seq2SeqExample:
    """One source/target pair (``line``: 1-based line in its file, not part of equality)."""

    source: str
    target: str
    line: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class KgclueExample:
    """One KgCLUE question with its answer triple; ``subject`` has its sense ``mention`` split off.

    Attributes:
        question: the question text.
        subject: S without the parenthesised sense (``守望星光``); ``""`` in unlabelled splits.
        mention: M, the sense inside the trailing full-width parentheses (``韩玉玲、刘东考演唱歌曲``) or ``""``.
        predicate: P. obj: O, the answer scored by EM/F1.
        line: 1-based line in its file.
    """

    question: str
    subject: str = ""
    mention: str = ""
    predicate: str = ""
    obj: str = ""
    line: int = field(default=0, compare=False)

    @property
    def head(self) -> str:
        """The head entity as written in the data: ``S（M）`` (or ``S``)."""
        return f"{self.subject}（{self.mention}）" if self.mention else self.subject


@dataclass(frozen=True)
class Seq2SeqDataset:
    """A registered dataset: per split ``(file, fmt, source column, target column)``; ``fmt`` is ``tsv`` or
    ``kgclue``."""

    name: str
    splits: dict[str, tuple[str, str, int, int]]


SEQ2SEQ_DATASETS: dict[str, Seq2SeqDataset] = {d.name: d for d in (
    Seq2SeqDataset("lcsts_clge", {"train": ("train.tsv", "tsv", 1, 0), "dev": ("val.tsv", "tsv", 1, 0),
                                  "test": ("test.tsv", "tsv", 1, 0)}),
    Seq2SeqDataset("csl_title", {"train": ("benchmark_ts/dev.tsv", "tsv", 1, 2),
                                 "dev": ("clge/val.tsv", "tsv", 1, 0), "test": ("clge/test.tsv", "tsv", 1, 0)}),
    Seq2SeqDataset("kgclue", {"train": ("train.json", "kgclue", 0, 0), "dev": ("dev.json", "kgclue", 0, 0),
                              "test": ("test_public.json", "kgclue", 0, 0)}),
)}
"""Registered seq2seq datasets by name."""


def read_seq2seq_tsv(path: str | Path, source_column: int = 0, target_column: int = 1) -> list[Seq2SeqExample]:
    """Read tab-separated lines into pairs, taking the source and target from the given columns.

    Raises:
        DataFormatError: a line with a different field count than the first, an empty source or target, a blank
            line inside the file, invalid UTF-8, an empty file. ConfigError: the file is missing.
    """
    path = Path(path)
    out: list[Seq2SeqExample] = []
    width = None
    blank = None
    need = max(source_column, target_column) + 1
    for number, text in iter_lines(path):
        if not text.strip():
            blank = blank or number
            continue
        if blank is not None:
            raise DataFormatError(path, blank, "blank line inside the file (only trailing blank lines are allowed)")
        fields = text.split("\t")
        if width is None:
            width = len(fields)
            if width < need:
                raise DataFormatError(path, number, f"expected at least {need} tab-separated fields, found {width}")
        if len(fields) != width:
            raise DataFormatError(path, number, f"expected {width} tab-separated fields like the first line, "
                                                f"found {len(fields)}")
        source, target = fields[source_column].strip(), fields[target_column].strip()
        if not source or not target:
            which, column = ("source", source_column) if not source else ("target", target_column)
            raise DataFormatError(path, number, f"{which} (column {column + 1}): expected a non-empty text")
        out.append(Seq2SeqExample(source, target, number))
    if not out:
        raise DataFormatError(path, None, "expected source/target lines, found none")
    return out


def _json_lines(path: Path):
    for number, text in iter_lines(path):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataFormatError(path, number, f"invalid JSON: {err.msg}") from None
        if not isinstance(record, dict):
            raise DataFormatError(path, number, f"expected a JSON object, found {type(record).__name__}")
        yield number, record


def read_seq2seq_jsonl(path: str | Path) -> list[Seq2SeqExample]:
    """Read JSON lines ``{"source": str, "target": str}`` (other keys ignored).

    Raises:
        DataFormatError: invalid JSON, a missing or empty ``source`` / ``target``. ConfigError: missing file.
    """
    path = Path(path)
    out = []
    for number, record in _json_lines(path):
        for key in ("source", "target"):
            if not isinstance(record.get(key), str) or not record[key].strip():
                raise DataFormatError(path, number, f"expected a non-empty string {key!r}")
        out.append(Seq2SeqExample(record["source"].strip(), record["target"].strip(), number))
    if not out:
        raise DataFormatError(path, None, "expected JSON lines with 'source' and 'target', found none")
    return out


def read_seq2seq(path: str | Path) -> list[Seq2SeqExample]:
    """A user file by its suffix: ``.jsonl`` / ``.json`` as :func:`read_seq2seq_jsonl`, else ``source \\t target``."""
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".json"):
        return read_seq2seq_jsonl(path)
    return read_seq2seq_tsv(path)


def split_mention(head: str) -> tuple[str, str]:
    """``(S, M)`` from a head entity ``S（M）``: the trailing balanced full-width parentheses are the sense M.

    ``"守望星光（韩玉玲、刘东考演唱歌曲）" -> ("守望星光", "韩玉玲、刘东考演唱歌曲")``; ``"龙晶" -> ("龙晶", "")``. A head that is
    only a parenthesis, or whose parentheses do not balance, is kept whole as S.
    """
    if not head.endswith("）"):
        return head, ""
    depth = 0
    for i in range(len(head) - 1, -1, -1):
        depth += head[i] == "）"
        depth -= head[i] == "（"
        if depth == 0:
            return (head[:i], head[i + 1:-1]) if i > 0 else (head, "")
    return head, ""


def read_kgclue(path: str | Path, labelled: bool = True) -> list[KgclueExample]:
    """Read KgCLUE JSON lines ``{"question", "answer": "S ||| P ||| O"}``.

    Args:
        labelled: whether every line must carry an answer (``False`` also accepts answer-less lines).
    Raises:
        DataFormatError: invalid JSON, an empty ``question``, an answer that is not three ``|||``-separated fields
            with non-empty S, P and O. ConfigError: missing file.
    """
    path = Path(path)
    out = []
    for number, record in _json_lines(path):
        question = record.get("question")
        if not isinstance(question, str) or not question.strip():
            raise DataFormatError(path, number, "expected a non-empty string 'question'")
        answer = record.get("answer")
        if answer is None and not labelled:
            out.append(KgclueExample(question.strip(), line=number))
            continue
        if not isinstance(answer, str):
            raise DataFormatError(path, number, "expected a string 'answer' (\"S ||| P ||| O\")")
        parts = [p.strip() for p in answer.split("|||")]
        if len(parts) != 3 or not all(parts):
            raise DataFormatError(path, number, f"answer: expected \"S ||| P ||| O\" with three non-empty fields, "
                                                f"found {answer!r}")
        subject, mention = split_mention(parts[0])
        out.append(KgclueExample(question.strip(), subject, mention, parts[1], parts[2], number))
    if not out:
        raise DataFormatError(path, None, "expected KgCLUE question lines, found none")
    return out


def resolve_seq2seq(name_or_path: str | Path, split: str, root: str | Path | None = None
                    ) -> tuple[Path, str, int, int]:
    """``(path, fmt, source column, target column)`` of one split of a registered dataset, or of a user file
    (the file itself is every split; ``fmt`` ``"user"``).

    Raises:
        ConfigError: a split the dataset lacks, a missing file, an unknown name that is no existing file (naming
            ``--data``).
    """
    canon = canonical_split(split)
    key = str(name_or_path)
    if key in SEQ2SEQ_DATASETS:
        info = SEQ2SEQ_DATASETS[key]
        if canon not in info.splits:
            raise ConfigError(f"--data {key}: no {canon!r} split here; available: {', '.join(info.splits)}")
        file, fmt, src, tgt = info.splits[canon]
        path = data_root(root) / key / file
        if not path.is_file():
            raise ConfigError(f"--data {key}: expected {path} ($KEXUE_DATA/{key}/{file}), not found")
        return path, fmt, src, tgt
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path, "user", 0, 1
    if path.is_dir():
        return _split_in_folder(path, canon), "user", 0, 1
    raise ConfigError(f"--data {key}: not a registered seq2seq dataset ({', '.join(SEQ2SEQ_DATASETS)}) and no "
                      f"such file or folder")


_FOLDER_STEMS = {"train": ("train",), "dev": ("dev", "val", "valid"), "test": ("test_public", "test")}


def _split_in_folder(folder: Path, split: str) -> Path:
    """The file of ``split`` in a folder of your own: ``train.*``, ``dev.*`` / ``val.*`` / ``valid.*``,
    ``test_public.*`` (else ``test.*``), with a ``.json``, ``.jsonl``, ``.tsv`` or ``.txt`` suffix."""
    for stem in _FOLDER_STEMS[split]:
        found = sorted(p for p in folder.iterdir()
                       if p.is_file() and p.stem == stem and p.suffix.lower() in (".json", ".jsonl", ".tsv", ".txt"))
        if len(found) > 1:
            raise ConfigError(f"--data {folder}: {len(found)} files for the {split} split "
                              f"({', '.join(p.name for p in found)}); keep one")
        if found:
            return found[0]
    names = " or ".join(f"{stem}.json/.tsv" for stem in _FOLDER_STEMS[split])
    raise ConfigError(f"--data {folder}: no {split} file (expected {names})")


def load_seq2seq(name_or_path: str | Path, split: str, root: str | Path | None = None) -> list[Seq2SeqExample]:
    """Source/target pairs of one split (for ``kgclue`` use :func:`load_kgclue`, which keeps the triples).

    Raises:
        ConfigError / DataFormatError: as :func:`resolve_seq2seq` and the readers.
    """
    path, fmt, src, tgt = resolve_seq2seq(name_or_path, split, root)
    if fmt == "user":
        return read_seq2seq(path)
    if fmt == "kgclue":
        raise ConfigError(f"--data {name_or_path}: a KgCLUE dataset; use `kexue train kgclue`")
    return read_seq2seq_tsv(path, src, tgt)


def load_kgclue(name_or_path: str | Path, split: str, root: str | Path | None = None) -> list[KgclueExample]:
    """KgCLUE questions of one split: ``kgclue`` (registered) or a KgCLUE-format file of your own.

    Raises:
        ConfigError / DataFormatError: as :func:`resolve_seq2seq` and :func:`read_kgclue`.
    """
    path, fmt, _, _ = resolve_seq2seq(name_or_path, split, root)
    if fmt == "tsv":
        raise ConfigError(f"--data {name_or_path}: not a KgCLUE dataset (expected JSON lines with question/answer)")
    return read_kgclue(path)
