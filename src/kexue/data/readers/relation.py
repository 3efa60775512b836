"""Readers for relation-extraction data: DuIE 2.0 and CMeIE JSON lines with their schema files.

Records ``{"text", "spo_list": [{"subject", "predicate", "object": {"@value": ..., [slot: ...]}, ...}]}``.
A complex object (DuIE 2.0, e.g. 配音 with ``inWork``) becomes one triple per slot, with relation label
``predicate`` for the ``@value`` slot and ``f"{predicate}_{slot}"`` for the others (as GPLinker's DuIE 2.0
script does). The data gives strings, not offsets: subject and object are located at their first occurrence
in the text (the GPLinker convention, https://kexue.fm/archives/8888), so each triple also carries character
spans (``end`` exclusive).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kexue.data.readers.jsonlines import iter_text_records
from kexue.data.readers.text_lines import read_text
from kexue.errors import DataFormatError


@dataclass(frozen=True)
class RelationTriple:
    """``(subject, predicate, object)`` with character spans (first occurrence; ``end`` exclusive)."""

    subject: str
    predicate: str
    object: str
    subject_start: int
    object_start: int
    subject_type: str = ""
    object_type: str = ""

    @property
    def subject_end(self) -> int:
        """Exclusive end of the subject span."""
        return self.subject_start + len(self.subject)

    @property
    def object_end(self) -> int:
        """Exclusive end of the object span."""
        return self.object_start + len(self.object)


@dataclass(frozen=True)
class RelationExample:
    """One text with its (deduplicated, order-preserving) triples; ``line`` is 1-based in ``path``."""

    text: str
    triples: tuple[RelationTriple, ...]
    line: int = 0
    path: str = ""


@dataclass(frozen=True)
class RelationSchema:
    """Relation labels (predicates, complex-object slots expanded) in schema order, without duplicates."""

    predicates: tuple[str, ...]

    def index(self) -> dict[str, int]:
        """``{predicate: head index}``."""
        return {p: i for i, p in enumerate(self.predicates)}


def relation_label(predicate: str, slot: str) -> str:
    """Relation label of one object slot: ``predicate`` for ``@value``, else ``f"{predicate}_{slot}"``."""
    return predicate if slot == "@value" else f"{predicate}_{slot}"


def read_relation_schema(path: str | Path) -> RelationSchema:
    """Read a DuIE schema (one JSON array, or JSON lines) or CMeIE ``53_schemas.json`` (JSON lines).

    Entries ``{"predicate", "object_type": {slot: type} | type, "subject_type"}``.

    Raises:
        DataFormatError: invalid UTF-8 (named by line) or JSON, or an entry without a string ``predicate``.
    """
    path = Path(path)
    raw = read_text(path, "relation schema")
    entries: list[tuple[int | None, object]]
    if raw.lstrip().startswith("["):
        try:
            entries = [(n, e) for n, e in enumerate(json.loads(raw), 1)]
        except json.JSONDecodeError as err:
            raise DataFormatError(path, err.lineno, f"invalid JSON: {err.msg}") from None
    else:
        entries = []
        for number, line in enumerate(raw.splitlines(), 1):
            if line.strip():
                try:
                    entries.append((number, json.loads(line)))
                except json.JSONDecodeError as err:
                    raise DataFormatError(path, number, f"invalid JSON: {err.msg}") from None
    labels: list[str] = []
    for number, entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("predicate"), str):
            raise DataFormatError(path, number, f"expected an object with a string 'predicate', found {entry!r}")
        slots = entry.get("object_type")
        keys = list(slots) if isinstance(slots, dict) else ["@value"]
        for slot in keys:
            label = relation_label(entry["predicate"], slot)
            if label not in labels:
                labels.append(label)
    return RelationSchema(tuple(labels))


def read_relation_data(path: str | Path, schema: RelationSchema | None = None,
                       require_labels: bool = True) -> list[RelationExample]:
    """Read DuIE / CMeIE JSON lines into :class:`RelationExample` records.

    Args:
        path: e.g. ``duie2.0_subset/train_data_5000.json`` or ``cmeie_subset/CMeIE_dev.json`` (CRLF is fine).
        schema: if given, every relation label must be in it.
        require_labels: a record without ``spo_list`` is an error (else it gets no triples).

    Raises:
        DataFormatError: invalid JSON, missing fields, a subject/object not found in the text, or a relation
            label not in ``schema``.
    """
    path = Path(path)
    known = set(schema.predicates) if schema is not None else None
    examples = []
    for number, record, text in iter_text_records(path, "spo_list", require_labels):
        triples: list[RelationTriple] = []
        for spo in record.get("spo_list") or []:
            triples.extend(_triples_of(spo, text, known, path, number))
        examples.append(RelationExample(text, tuple(dict.fromkeys(triples)), number, str(path)))
    return examples


def _triples_of(spo: object, text: str, known: set[str] | None, path: Path, number: int
                ) -> list[RelationTriple]:
    if not isinstance(spo, dict) or not all(k in spo for k in ("subject", "predicate", "object")):
        raise DataFormatError(path, number, f"spo entry needs subject, predicate, object: {spo!r}")
    subject, objects = spo["subject"], spo["object"]
    if not isinstance(objects, dict):
        objects = {"@value": objects}
    object_types = spo.get("object_type")
    if not isinstance(object_types, dict):
        object_types = {"@value": object_types}
    if not isinstance(subject, str) or not subject or text.find(subject) < 0:
        raise DataFormatError(path, number, f"subject {subject!r} not found in the text")
    out = []
    for slot, obj in objects.items():
        label = relation_label(str(spo["predicate"]), slot)
        if known is not None and label not in known:
            raise DataFormatError(path, number, f"relation {label!r} is not in the schema")
        if not isinstance(obj, str) or not obj or text.find(obj) < 0:
            raise DataFormatError(path, number, f"object {obj!r} ({label}) not found in the text")
        out.append(RelationTriple(subject, label, obj, text.find(subject), text.find(obj),
                                  str(spo.get("subject_type") or ""), str(object_types.get(slot) or "")))
    return out
