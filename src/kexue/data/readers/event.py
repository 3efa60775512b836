"""Readers for DuEE 1.0 event data and its schema.

Records ``{"id", "text", "event_list": [{"event_type", "trigger", "trigger_start_index",
"arguments": [{"role", "argument", "argument_start_index"}]}]}``; schema lines
``{"event_type", "role_list": [{"role"}]}``. Spans are character offsets with exclusive ``end``; the reader
checks ``text[start:end] == argument`` for triggers and arguments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kexue.data.readers.text_lines import iter_lines
from kexue.errors import DataFormatError

TRIGGER_ROLE = "trigger"
"""Role name given to the trigger, which GPLinker treats as one more argument."""


@dataclass(frozen=True)
class EventArgument:
    """An argument (or the trigger, role :data:`TRIGGER_ROLE`): ``text[start:end]`` is ``self.text``."""

    role: str
    text: str
    start: int

    @property
    def end(self) -> int:
        """Exclusive end character."""
        return self.start + len(self.text)


@dataclass(frozen=True)
class Event:
    """One event: its type, trigger and arguments (in file order)."""

    event_type: str
    trigger: EventArgument
    arguments: tuple[EventArgument, ...]

    def all_arguments(self) -> tuple[EventArgument, ...]:
        """Trigger first, then the arguments."""
        return (self.trigger, *self.arguments)


@dataclass(frozen=True)
class EventExample:
    """One text and its events; ``line`` is 1-based in ``path``."""

    id: str
    text: str
    events: tuple[Event, ...]
    line: int = 0
    path: str = ""


@dataclass(frozen=True)
class EventSchema:
    """Event types and their roles, in file order."""

    roles: dict[str, tuple[str, ...]]

    def labels(self) -> list[tuple[str, str]]:
        """GPLinker argument labels: ``(type, TRIGGER_ROLE)`` then ``(type, role)`` for each type."""
        return [(etype, role) for etype, roles in self.roles.items() for role in (TRIGGER_ROLE, *roles)]


def _load_lines(path: Path) -> list[tuple[int, object]]:
    """``(line, value)`` of each non-blank JSON line (DataFormatError naming the line for bad UTF-8 or JSON)."""
    out = []
    for number, raw in iter_lines(path):
        if raw.strip():
            try:
                out.append((number, json.loads(raw)))
            except json.JSONDecodeError as err:
                raise DataFormatError(path, number, f"invalid JSON: {err.msg}") from None
    return out


def read_event_schema(path: str | Path) -> EventSchema:
    """Read ``event_schema.json`` (JSON lines).

    Raises:
        DataFormatError: invalid JSON, missing ``event_type``/``role_list``, a duplicate type, or a role named
            :data:`TRIGGER_ROLE`.
    """
    path = Path(path)
    roles: dict[str, tuple[str, ...]] = {}
    for number, entry in _load_lines(path):
        if not isinstance(entry, dict) or not isinstance(entry.get("event_type"), str) \
                or not isinstance(entry.get("role_list"), list):
            raise DataFormatError(path, number, "expected {'event_type': str, 'role_list': [{'role': str}]}")
        names = []
        for role in entry["role_list"]:
            if not isinstance(role, dict) or not isinstance(role.get("role"), str):
                raise DataFormatError(path, number, f"role entry {role!r} has no string 'role'")
            if role["role"] == TRIGGER_ROLE:
                raise DataFormatError(path, number, f"role name {TRIGGER_ROLE!r} is reserved for the trigger")
            names.append(role["role"])
        if entry["event_type"] in roles:
            raise DataFormatError(path, number, f"duplicate event_type {entry['event_type']!r}")
        roles[entry["event_type"]] = tuple(names)
    return EventSchema(roles)


def _argument(text: str, role: str, value: object, start: object, path: Path, number: int) -> EventArgument:
    if not isinstance(value, str) or not value or not isinstance(start, int) or start < 0:
        raise DataFormatError(path, number, f"{role}: expected a non-empty string and an int start, "
                                            f"found {value!r} at {start!r}")
    if text[start:start + len(value)] != value:
        raise DataFormatError(path, number, f"{role} {value!r} at {start} does not match the text "
                                            f"({text[start:start + len(value)]!r})")
    return EventArgument(role, value, start)


def read_duee(path: str | Path, schema: EventSchema | None = None, require_labels: bool = True
              ) -> list[EventExample]:
    """Read DuEE 1.0 JSON lines (``dev.json``, ``sample_data.json``; ``test1.json`` with
    ``require_labels=False``).

    Raises:
        DataFormatError: invalid JSON, missing fields, an offset that does not match the text, or (with
            ``schema``) an unknown event type or role.
    """
    path = Path(path)
    examples = []
    for number, record in _load_lines(path):
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise DataFormatError(path, number, "expected an object with a string 'text'")
        text = record["text"]
        if "event_list" not in record and require_labels:
            raise DataFormatError(path, number, "missing 'event_list'")
        events = []
        for item in record.get("event_list") or []:
            if not isinstance(item, dict) or not isinstance(item.get("event_type"), str):
                raise DataFormatError(path, number, f"event without a string 'event_type': {item!r}")
            etype = item["event_type"]
            if schema is not None and etype not in schema.roles:
                raise DataFormatError(path, number, f"event_type {etype!r} is not in the schema")
            trigger = _argument(text, TRIGGER_ROLE, item.get("trigger"), item.get("trigger_start_index"),
                                path, number)
            arguments = []
            for arg in item.get("arguments") or []:
                if not isinstance(arg, dict) or not isinstance(arg.get("role"), str):
                    raise DataFormatError(path, number, f"argument without a string 'role': {arg!r}")
                if schema is not None and arg["role"] not in schema.roles[etype]:
                    raise DataFormatError(path, number, f"role {arg['role']!r} is not a role of {etype!r}")
                arguments.append(_argument(text, arg["role"], arg.get("argument"),
                                           arg.get("argument_start_index"), path, number))
            events.append(Event(etype, trigger, tuple(arguments)))
        examples.append(EventExample(str(record.get("id", "")), text, tuple(events), number, str(path)))
    return examples
