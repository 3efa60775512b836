"""Readers for named-entity data: CoNLL-style BIO columns, MSRA parallel files, CLUENER JSON spans.

Every reader returns :class:`NerExample` records whose entities are character spans into ``text``
(``end`` exclusive: ``text[start:end] == entity.text``). Malformed input raises
:class:`kexue.errors.DataFormatError` with the file and 1-based line.

Datasets: conll2003 (``bio/*.txt``), people_daily_ner (``example.*``), msra_ner (``*.sentences.txt`` +
``*.tags.txt``), cluener2020 (``*.json``). See each folder's SOURCE.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kexue.data.readers.jsonlines import iter_text_records
from kexue.data.readers.text_lines import iter_lines
from kexue.errors import DataFormatError


@dataclass(frozen=True)
class Entity:
    """A typed character span: ``text[start:end]`` (``end`` exclusive) is ``self.text``."""

    type: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class NerExample:
    """One sentence with its entities.

    Attributes:
        text: the sentence (tokens joined by the reader's separator).
        entities: entities sorted by ``(start, end, type)``; may nest only for span-annotated data (CLUENER).
        tokens: the original tokens (BIO readers) or ``None``.
        tags: the original BIO tags (BIO readers) or ``None``.
        line: 1-based line of the first token / the JSON record in ``path``.
        path: the source file.
    """

    text: str
    entities: tuple[Entity, ...]
    tokens: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    line: int = 0
    path: str = ""


LENIENT_BIO_FLAG = "--lenient-bio"
"""The CLI option (``train ner``) that reads stray ``I-X`` tags by conlleval's rule; named in the refusal."""


def _bio_spans(tags: list[str], path: Path, lines: list[int], lenient: bool = False) -> list[tuple[str, int, int]]:
    """Spans ``(type, first, last)`` (token indices, inclusive) of BIO (IOB2) tags.

    Strict (default): every ``I-X`` must continue an ``X`` entity (the previous tag is ``B-X`` or ``I-X``).
    ``lenient``: an ``I-X`` that does not continue an ``X`` entity starts a new one, as conlleval reads it
    (its ``startOfChunk``: ``I-X`` after ``O`` or after a tag of another type opens a chunk).
    """
    spans: list[tuple[str, int, int]] = []
    prev = "O"
    for n, (tag, line) in enumerate(zip(tags, lines, strict=True)):
        if tag != "O" and not (len(tag) > 2 and tag[1] == "-" and tag[0] in "BI"):
            raise DataFormatError(path, line, f"expected a BIO tag 'O', 'B-X' or 'I-X', found {tag!r}")
        if tag.startswith("I-") and prev[2:] == tag[2:]:
            spans[-1] = (spans[-1][0], spans[-1][1], n)
        elif tag.startswith("I-") and not lenient:
            raise DataFormatError(path, line, f"{tag!r} does not continue an entity (previous tag {prev!r}); "
                                              f"the file is not strict BIO (IOB2): convert IOB1 first, or pass "
                                              f"{LENIENT_BIO_FLAG} to read such an I- tag as the start of a new "
                                              f"entity (conlleval's rule)")
        elif tag != "O":
            spans.append((tag[2:], n, n))
        prev = tag
    return spans


def _example_from_bio(tokens: list[str], tags: list[str], sep: str, path: Path, lines: list[int],
                      lenient_bio: bool = False) -> NerExample:
    spans = _bio_spans(tags, path, lines, lenient_bio)
    starts, pos = [], 0
    for token in tokens:
        starts.append(pos)
        pos += len(token) + len(sep)
    text = sep.join(tokens)
    entities = tuple(
        Entity(etype, starts[s], starts[e] + len(tokens[e]), text[starts[s]:starts[e] + len(tokens[e])])
        for etype, s, e in spans
    )
    return NerExample(text, entities, tuple(tokens), tuple(tags), lines[0], str(path))


def read_conll_bio(path: str | Path, sep: str = " ", token_column: int = 0, tag_column: int = -1,
                   docstart: str = "-DOCSTART-", lenient_bio: bool = False) -> list[NerExample]:
    """Read a CoNLL-style BIO file: one ``token ... tag`` line per token, blank line between sentences.

    Works for conll2003 ``bio/{train,valid,test}.txt`` (``sep=" "``, ``-DOCSTART-`` lines skipped) and
    people_daily_ner ``example.{dev,test}`` (one character per line: pass ``sep=""``).

    Args:
        path: the file.
        sep: string joining tokens into ``text`` (``" "`` for English, ``""`` for Chinese characters).
        token_column, tag_column: whitespace-separated columns of the token and the BIO tag.
        docstart: token marking document boundaries (its line is skipped).
        lenient_bio: read an ``I-X`` that does not continue an ``X`` entity as the start of a new entity
            (conlleval's rule; real corpora such as Weibo NER contain such tags). ``tags`` keep the file's tags.

    Raises:
        DataFormatError: a line with too few columns or not valid UTF-8, a tag that is not ``O``/``B-X``/``I-X``,
            or (unless ``lenient_bio``) an ``I-X`` that does not continue an ``X`` entity.
        ConfigError: the file is missing or a folder.
    """
    path = Path(path)
    examples: list[NerExample] = []
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    for number, line in iter_lines(path, "NER file"):
        if not line.strip():
            if tokens:
                examples.append(_example_from_bio(tokens, tags, sep, path, lines, lenient_bio))
                tokens, tags, lines = [], [], []
            continue
        cols = line.split()
        if len(cols) < 2:
            raise DataFormatError(path, number, f"expected 'token ... tag' columns, found {line!r}")
        try:
            token, tag = cols[token_column], cols[tag_column]
        except IndexError:
            raise DataFormatError(path, number, f"no column {token_column}/{tag_column} in {line!r}") from None
        if token == docstart:
            continue
        tokens.append(token)
        tags.append(tag)
        lines.append(number)
    if tokens:
        examples.append(_example_from_bio(tokens, tags, sep, path, lines, lenient_bio))
    return examples


def read_msra_ner(sentences_path: str | Path, tags_path: str | Path, sep: str = "", lenient_bio: bool = False
                  ) -> list[NerExample]:
    """Read msra_ner's parallel files: space-separated characters and space-separated BIO tags per line.

    ``lenient_bio`` as in :func:`read_conll_bio`.

    Raises:
        DataFormatError: different line counts, or a line whose token and tag counts differ (named by the
            tags file and line), a bad BIO tag, or a line that is not valid UTF-8.
    """
    sentences_path, tags_path = Path(sentences_path), Path(tags_path)
    sentences = [text for _, text in iter_lines(sentences_path, "NER sentences file")]
    tag_lines = [text for _, text in iter_lines(tags_path, "NER tags file")]
    if len(sentences) != len(tag_lines):
        raise DataFormatError(tags_path, None, f"{len(tag_lines)} tag lines but {len(sentences)} sentence lines "
                                               f"in {sentences_path}")
    examples = []
    for number, (sentence, tag_line) in enumerate(zip(sentences, tag_lines, strict=True), 1):
        tokens, tags = sentence.split(), tag_line.split()
        if len(tokens) != len(tags):
            raise DataFormatError(tags_path, number, f"{len(tags)} tags for {len(tokens)} tokens")
        if not tokens:
            raise DataFormatError(sentences_path, number, "empty sentence")
        examples.append(_example_from_bio(tokens, tags, sep, tags_path, [number] * len(tokens), lenient_bio))
    return examples


def read_cluener(path: str | Path, require_labels: bool = True) -> list[NerExample]:
    """Read CLUENER2020 JSON lines ``{"text", "label": {type: {entity_text: [[start, end_inclusive], ...]}}}``.

    Entities come back with exclusive ``end`` (``end_inclusive + 1``); nested or overlapping spans are kept.

    Args:
        path: ``train.json`` / ``dev.json`` (or ``test.json`` with ``require_labels=False``).
        require_labels: a record without ``"label"`` is an error (else it gets no entities).

    Raises:
        DataFormatError: invalid JSON, missing ``text``/``label``, a malformed span, or a span whose text is not
            the entity string.
    """
    path = Path(path)
    examples = []
    for number, record, text in iter_text_records(path, "label", require_labels,
                                                  " (pass require_labels=False for test files)"):
        entities = []
        for etype, mentions in (record.get("label") or {}).items():
            if not isinstance(mentions, dict):
                raise DataFormatError(path, number, f"label[{etype!r}] must map entity text to spans")
            for mention, spans in mentions.items():
                for span in spans:
                    if not (isinstance(span, list) and len(span) == 2 and all(isinstance(v, int) for v in span)):
                        raise DataFormatError(path, number, f"span {span!r} of {mention!r} is not [start, end]")
                    start, end = span[0], span[1] + 1
                    if text[start:end] != mention or start < 0:
                        raise DataFormatError(path, number, f"span {span!r} gives {text[start:end]!r}, "
                                                            f"label says {mention!r}")
                    entities.append(Entity(etype, start, end, mention))
        entities.sort(key=lambda e: (e.start, e.end, e.type))
        examples.append(NerExample(text, tuple(entities), line=number, path=str(path)))
    return examples
