"""A Chinese pretraining corpus from ``$KEXUE_DATA`` that never contains evaluation text.

For MLM pretraining of kexue's own Chinese base model (RoFormerV2 recipe, https://kexue.fm/archives/8998).
Sources (:data:`PRETRAIN_SOURCES`): the raw ``zh_raw_sentences`` samples (Chinese Wikipedia, CLUECorpusSmall),
the Chinese side of ``ted_en_zh_sample``, FewCLUE's ``unlabeled.json`` files and the *training* splits of the
Chinese datasets. Never a dev, valid or test file: :data:`EVAL_FILES` lists every evaluation file of the
Chinese datasets (read fully, every Chinese string of every record), and a training record or sentence whose
text equals an evaluation text or sentence is dropped and counted (``simclue_sample``'s training files and
``corpus_1w.txt`` share pairs with lcqmc test, afqmc, atec and stsb_zh; ``lcsts_clge`` train shares 58 texts
with its val/test).

Output: one sentence per line, documents separated by one blank line (BERT's pretraining layout, as in
``zh_raw_sentences``), sentences deduplicated across the whole corpus (whitespace removed, Latin lower-cased
for the comparison). Beside it a manifest JSON lists every file used, its role (``raw``, ``unlabeled``,
``train``), per-source documents / sentences / characters and what was dropped and why, the evaluation
files checked, and the datasets left out with the reason.

Left out on purpose: THUCNews titles (only its dev/test splits are here), ``duee1.0`` (no training split;
restricted licence), ``cail2020_sfzy_sample`` (a 20-document format sample) and sentences with FewCLUE
CHID's ``#idiom#`` blank (a broken sentence).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kexue.errors import ConfigError, DataFormatError

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_SENTENCE = re.compile(r"[^。！？!?…\n]*[。！？!?…]+[”’」』）)\"']*|[^。！？!?…\n]+")
_SPACE = re.compile(r"\s+")
FEWCLUE_TASKS = ("bustm", "chid", "cluewsc", "csl", "csldcp", "eprstmt", "iflytek", "ocnli", "tnews")
FEWCLUE_FIELDS = ("sentence", "sentence1", "sentence2", "content", "abst", "text")
PLACEHOLDERS = ("#idiom#",)


@dataclass(frozen=True)
class Source:
    """One pretraining source.

    Attributes:
        name: short name in the manifest.
        files: paths relative to the data root (all must exist).
        kind: ``"documents"`` (one sentence per line, blank line between documents), ``"lines"`` (one text per
            line), ``"tsv"`` (tab-separated columns ``fields``) or ``"jsonl"`` (JSON lines, keys ``fields``).
        fields: the columns / keys holding text (each is a document of its own).
        role: ``"raw"``, ``"unlabeled"`` or ``"train"`` (never an evaluation split).
        group: for ``lines``/``tsv`` of running text (TED), consecutive lines per document; 1 = each its own.
    """

    name: str
    files: tuple[str, ...]
    kind: str
    fields: tuple = ()
    role: str = "train"
    group: int = 1


PRETRAIN_SOURCES: tuple[Source, ...] = (
    Source("zhwiki", ("zh_raw_sentences/zhwiki_bert_sampled.txt",), "documents", role="raw"),
    Source("clue_corpus_small", ("zh_raw_sentences/CLUECorpusSmall_bert_sampled.txt",), "documents", role="raw"),
    Source("ted_zh", ("ted_en_zh_sample/parallel_corpus_en_zh.txt",), "tsv", (1,), role="raw", group=16),
    Source("fewclue_unlabeled", tuple(f"fewclue/{t}/unlabeled.json" for t in ("bustm", "chid", "eprstmt", "tnews")),
           "jsonl", FEWCLUE_FIELDS, role="unlabeled"),
    Source("fewclue_train", tuple(f"fewclue/{t}/train_few_all.json" for t in FEWCLUE_TASKS), "jsonl",
           FEWCLUE_FIELDS),
    Source("afqmc_train", ("afqmc/train.txt",), "tsv", (0, 1)),
    Source("stsb_zh_train", ("stsb_zh/STS-B.train.data",), "tsv", (0, 1)),
    Source("sentiment_zh_train", ("sentiment_zh/sentiment.train.data",), "tsv", (0,)),
    Source("cluener2020_train", ("cluener2020/train.json",), "jsonl", ("text",)),
    Source("duie2.0_train", ("duie2.0_subset/train_data_5000.json",), "jsonl", ("text",)),
    Source("cmeie_train", ("cmeie_subset/CMeIE_train.json",), "jsonl", ("text",)),
    Source("kgclue_train", ("kgclue/train.json",), "jsonl", ("question",)),
    Source("lcsts_train", ("lcsts_clge/train.tsv",), "tsv", (0, 1)),
    Source("simclue_train", ("simclue_sample/train_pair_1w.json", "simclue_sample/train_pair_postive_1w.json",
                             "simclue_sample/train_rank_1w.json", "simclue_sample/triclue_small/train.json"),
           "jsonl", ("sentence1", "sentence2", "query", "title", "neg_title", "sentence_0", "sentence_1",
                     "sentence_2")),
    Source("simclue_corpus", ("simclue_sample/corpus_1w.txt",), "lines", role="unlabeled"),
)

RESEARCH_ONLY_SOURCES = frozenset({"duie2.0_train", "lcsts_train"})
"""Sources whose licence allows research use only (DuIE's participant agreement, LCSTS by application): left out of
the corpus of any model kexue ships (``kexue pretrain-corpus`` drops them unless ``--research-only``)."""

_FEWCLUE_EVAL = tuple(f"fewclue/{t}/{name}" for t in FEWCLUE_TASKS
                      for name in ("test_public.json", "dev_few_all.json", *(f"dev_{i}.json" for i in range(5))))
EVAL_FILES: dict[str, str] = {  # every evaluation file of the Chinese datasets -> how to read its text
    **{p: "tsv" for p in (
        "afqmc/dev.txt", "afqmc/test.txt", "atec/ATEC.valid.data", "atec/ATEC.test.data", "bq/dev.tsv",
        "bq/test_unlabeled.tsv", "lcqmc/dev.txt", "lcqmc/test.txt", "pawsx_zh/dev_2k.tsv", "pawsx_zh/test_2k.tsv",
        "stsb_zh/STS-B.valid.data", "stsb_zh/STS-B.test.data", "sentiment_zh/sentiment.valid.data",
        "sentiment_zh/sentiment.test.data", "lcsts_clge/val.tsv", "lcsts_clge/test.tsv", "csl_title/clge/val.tsv",
        "csl_title/clge/test.tsv", "csl_title/benchmark_ts/dev.tsv", "csl_title/benchmark_ts/test.tsv",
        "zh_raw_sentences/thucnews_titles/dev.txt", "zh_raw_sentences/thucnews_titles/test.txt")},
    **{p: "jsonl" for p in (
        "cluener2020/dev.json", "cluener2020/test.json", "cmeie_subset/CMeIE_dev.json",
        "cmeie_subset/CMeIE_test.json", "duee1.0/dev.json", "duee1.0/test1.json", "duee1.0/sample_data.json",
        "kgclue/dev.json", "kgclue/test_public.json", "kgclue/test.json", "simclue_sample/test_public.json",
        "simclue_sample/triclue_small/dev.json", "simclue_sample/triclue_small/test.json",
        "sohu2021_subset/text2vec/dd-test.jsonl", "sohu2021_subset/text2vec/dc-test.jsonl",
        "sohu2021_subset/biendata_baseline/samples.txt", *_FEWCLUE_EVAL)},
    "people_daily_ner/example.dev": "bio", "people_daily_ner/example.test": "bio",
    "msra_ner/val.sentences.txt": "spaced", "msra_ner/test.sentences.txt": "spaced",
}
EXCLUDED = {
    "zh_raw_sentences/thucnews_titles": "only dev/test splits are here (checked as evaluation text, not used)",
    "duee1.0": "no training split (dev, test1, sample_data are evaluation/restricted)",
    "cail2020_sfzy_sample": "20-document format sample, licence unknown",
    "fewclue chid #idiom#": "sentences with the blanked idiom are broken text",
}


def sentence_key(text: str) -> str:
    """The comparison key of a sentence: whitespace removed, lower-cased."""
    return _SPACE.sub("", text).lower()


def split_sentences(text: str) -> list[str]:
    """Split Chinese running text after ``。！？!?…`` (closing quotes kept) and at newlines; strips pieces."""
    return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds a CJK ideograph."""
    return bool(_CJK.search(text))


# ---------------------------------------------------------------------- reading
def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            yield i, line.rstrip("\n").rstrip("\r")


def _json_records(path: Path) -> Iterator[tuple[int, dict]]:
    for i, line in _lines(path):
        if not line.strip():
            continue
        try:
            yield i, json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFormatError(path, i, f"expected one JSON object per line ({err.msg})") from err


def _strings(obj) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def eval_texts(path: Path, kind: str) -> Iterator[str]:
    """Every Chinese text of an evaluation file (all CJK strings of every record / column)."""
    if kind == "jsonl":
        for _, record in _json_records(path):
            yield from (s for s in _strings(record) if has_cjk(s))
    elif kind == "tsv":
        for _, line in _lines(path):
            yield from (s for s in line.split("\t") if has_cjk(s))
    elif kind == "spaced":
        for _, line in _lines(path):
            if has_cjk(line):
                yield _SPACE.sub("", line)
    elif kind == "bio":
        chars: list[str] = []
        for _, line in _lines(path):
            if line.strip():
                chars.append(line.split()[0])
            elif chars:
                yield "".join(chars)
                chars = []
        if chars:
            yield "".join(chars)
    else:
        raise ConfigError(f"unknown evaluation file kind {kind!r}")


def evaluation_keys(root: Path, files: dict[str, str] | None = None) -> set[str]:
    """Keys (:func:`sentence_key`) of every evaluation text and of each of its sentences.

    Raises:
        DataFormatError: an evaluation file is missing (the check must not silently shrink).
    """
    keys: set[str] = set()
    for rel, kind in (EVAL_FILES if files is None else files).items():
        path = root / rel
        if not path.is_file():
            raise DataFormatError(path, None, "evaluation file not found; the contamination check needs every "
                                  "dev/test file listed in kexue.data.corpus.EVAL_FILES")
        for text in eval_texts(path, kind):
            keys.add(sentence_key(text))
            keys.update(sentence_key(s) for s in split_sentences(text))
    keys.discard("")
    return keys


def source_documents(root: Path, source: Source, limit: int | None = None) -> Iterator[tuple[str, list[str]]]:
    """``(file, texts)`` per document of ``source``: each text a raw record field or line (not yet split).

    ``limit``: at most this many records (lines / JSON records / documents) per file.
    Raises:
        DataFormatError: a missing file, a short tsv line or a bad JSON line (path:line).
    """
    for rel in source.files:
        path = root / rel
        if not path.is_file():
            raise DataFormatError(path, None, f"file of pretraining source {source.name!r} not found")
        count = 0
        if source.kind == "documents":
            doc: list[str] = []
            for _, line in _lines(path):
                if line.strip():
                    doc.append(line)
                elif doc:
                    yield rel, doc
                    doc, count = [], count + 1
                    if limit is not None and count >= limit:
                        break
            else:
                if doc:
                    yield rel, doc
            continue
        if source.kind == "jsonl":
            rows: Iterable = ((i, [r[k] for k in source.fields if isinstance(r.get(k), str)])
                              for i, r in _json_records(path))
        elif source.kind in ("tsv", "lines"):
            def split(i: int, line: str, path: Path = path) -> list[str]:
                if source.kind == "lines":
                    return [line]
                cols = line.split("\t")
                if len(cols) <= max(source.fields):
                    raise DataFormatError(path, i, f"expected at least {max(source.fields) + 1} tab-separated "
                                          f"columns, found {len(cols)}")
                return [cols[c] for c in source.fields]
            rows = ((i, split(i, line)) for i, line in _lines(path) if line.strip())
        else:
            raise ConfigError(f"Source {source.name!r}: unknown kind {source.kind!r}")
        group: list[str] = []
        for _, texts in rows:
            count += 1
            if source.group > 1:
                group.extend(texts)
                if count % source.group == 0:
                    yield rel, group
                    group = []
            else:
                for text in texts:       # each field (question, title, passage ...) is its own document
                    yield rel, [text]
            if limit is not None and count >= limit:
                break
        if group:
            yield rel, group


# ---------------------------------------------------------------------- building
@dataclass
class SourceReport:
    """Counts of one source in the manifest."""

    name: str
    role: str
    files: list[str]
    documents: int = 0
    sentences: int = 0
    characters: int = 0
    dropped_eval_overlap: int = 0
    dropped_duplicates: int = 0
    dropped_other: int = 0


@dataclass
class CorpusReport:
    """What :func:`build_corpus` wrote: per-source counts, totals, the files used and checked."""

    output: str
    sources: list[SourceReport] = field(default_factory=list)
    eval_files_checked: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)

    @property
    def sentences(self) -> int:
        """Sentences written."""
        return sum(s.sentences for s in self.sources)

    @property
    def characters(self) -> int:
        """Non-space characters written (= tokens of a character vocabulary, up to Latin words)."""
        return sum(s.characters for s in self.sources)

    def to_dict(self) -> dict:
        """The manifest as a JSON-ready dict."""
        return {"output": self.output, "sentences": self.sentences, "characters": self.characters,
                "files_used": [f for s in self.sources for f in s.files],
                "sources": [vars(s) for s in self.sources], "eval_files_checked": self.eval_files_checked,
                "excluded": self.excluded}


def build_corpus(root: str | Path, output: str | Path, *, sources: Iterable[Source] = PRETRAIN_SOURCES,
                 limit: int | None = None, min_chars: int = 2, manifest: str | Path | None = None,
                 eval_files: dict[str, str] | None = None,
                 log: Callable[[str], None] | None = None) -> CorpusReport:
    """Gather, clean, decontaminate and deduplicate the Chinese pretraining corpus.

    Args:
        root: the data root (``$KEXUE_DATA``).
        output: the text file to write (one sentence per line, blank line between documents).
        sources: the pretraining sources (default :data:`PRETRAIN_SOURCES`); each must have role raw,
            unlabeled or train.
        limit: read at most this many records per file (small slices for tests); evaluation files are
            always read in full.
        min_chars: drop sentences with fewer non-space characters, or without any CJK character.
        manifest: where to write the manifest JSON (default ``<output>.manifest.json``).
        eval_files: evaluation files to check against (default :data:`EVAL_FILES`, all of them).
        log: progress lines (e.g. ``typer.echo``).
    Returns:
        the :class:`CorpusReport` (also written to the manifest).
    Raises:
        ConfigError: a source whose role is not raw / unlabeled / train, or one that names an evaluation file.
        DataFormatError: a missing or malformed file (path:line).
    """
    root, output = Path(root), Path(output)
    sources = list(sources)
    eval_files = EVAL_FILES if eval_files is None else eval_files
    for s in sources:
        if s.role not in ("raw", "unlabeled", "train"):
            raise ConfigError(f"Source {s.name!r}: role must be raw, unlabeled or train, got {s.role!r}")
        bad = [f for f in s.files if f in eval_files]
        if bad:
            raise ConfigError(f"Source {s.name!r} names evaluation files {bad}; they can never be pretraining text")
    blocked = evaluation_keys(root, eval_files)
    if log:
        log(f"{len(eval_files)} evaluation files checked: {len(blocked)} texts/sentences blocked")
    seen: set[str] = set()
    report = CorpusReport(output=str(output), eval_files_checked=sorted(eval_files), excluded=dict(EXCLUDED))
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as out:
        first = True
        for source in sources:
            rep = SourceReport(source.name, source.role, list(source.files))
            for _, texts in source_documents(root, source, limit):
                kept: list[str] = []
                for text in texts:
                    if sentence_key(text) in blocked:
                        rep.dropped_eval_overlap += 1
                        continue
                    for sent in split_sentences(text):
                        key = sentence_key(sent)
                        if len(key) < min_chars or not has_cjk(sent) or any(p in sent for p in PLACEHOLDERS):
                            rep.dropped_other += 1
                        elif key in blocked:
                            rep.dropped_eval_overlap += 1
                        elif key in seen:
                            rep.dropped_duplicates += 1
                        else:
                            seen.add(key)
                            kept.append(sent)
                if kept:
                    out.write(("" if first else "\n") + "\n".join(kept) + "\n")
                    first = False
                    rep.documents += 1
                    rep.sentences += len(kept)
                    rep.characters += sum(len(sentence_key(s)) for s in kept)
            report.sources.append(rep)
            if log:
                log(f"{rep.name}: {rep.documents} documents, {rep.sentences} sentences, {rep.characters} characters "
                    f"(dropped: {rep.dropped_eval_overlap} evaluation overlaps, {rep.dropped_duplicates} duplicates, "
                    f"{rep.dropped_other} too short / no Chinese / blanked)")
    path = Path(manifest) if manifest else output.with_name(output.name + ".manifest.json")
    path.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return report
