"""Reader for the public fragments of the Sohu 2021 text-matching data (``$KEXUE_DATA/sohu2021_subset``).

Two layouts, both UTF-8 JSON lines (see that folder's SOURCE.md):

* **graded** (``text2vec/dd-test.jsonl``, ``dc-test.jsonl``: short-short and short-long test pairs as text2vec
  re-packaged them): ``{"sentence1", "sentence2", "label": 0|3|5}``. The grades presumably merge the contest's two
  criteria (5 = same event, 3 = same topic only, 0 = neither; the re-packager does not document it), so
  criterion **A** (same topic) is ``label >= 3`` and criterion **B** (same event) is ``label == 5``.
* **contest** (``biendata_baseline/samples.txt`` and the contest's own files): ``{"source", "target",
  "labelA"|"labelB": "0"|"1"}`` (a string label; a file carries one criterion).

The contest's score is the mean of the positive-class F1 over the A tasks and over the B tasks
(https://kexue.fm/archives/8337, spec §5).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kexue.data.readers.pairs import read_pair_jsonl
from kexue.data.readers.text_lines import iter_lines
from kexue.data.records import SentencePair
from kexue.errors import ConfigError, DataFormatError

GRADES = (0, 3, 5)
"""The labels of the graded layout."""


@dataclass(frozen=True)
class SohuPairs:
    """The pairs of one Sohu file and which criteria its labels give.

    Attributes:
        pairs: the pairs; ``label`` is the grade 0/3/5 (graded layout) or 0/1 (contest layout).
        layout: ``"graded"``, ``"labelA"`` or ``"labelB"``.
        path: the file.
    """

    pairs: list[SentencePair]
    layout: str
    path: Path

    @property
    def criteria(self) -> tuple[str, ...]:
        """The criteria this file can be scored on: ``("A", "B")`` for graded files, else its own one."""
        return ("A", "B") if self.layout == "graded" else (self.layout[-1],)

    def labels(self, criterion: str) -> list[int]:
        """The 0/1 labels under ``criterion`` (``A``: same topic, ``B``: same event).

        Raises:
            ConfigError: the file does not carry that criterion.
        """
        if criterion not in self.criteria:
            raise ConfigError(f"{self.path}: criterion {criterion!r} is not in this file (it has "
                              f"{', '.join(self.criteria)})")
        if self.layout != "graded":
            return [int(p.label) for p in self.pairs]
        return [int(p.label >= 3) if criterion == "A" else int(p.label == 5) for p in self.pairs]


def sohu_layout(path: str | Path) -> str | None:
    """``"graded"``, ``"labelA"``/``"labelB"`` from the first record of a JSON-lines file, ``None`` when it is in
    neither Sohu layout (or is not JSON).

    Raises:
        ConfigError: the file does not exist.
    """
    for _, line in iter_lines(Path(path), "data file"):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            return None
        if not isinstance(obj, dict):
            return None
        if "source" in obj and "target" in obj:
            found = [k for k in ("labelA", "labelB") if k in obj]
            return found[0] if len(found) == 1 else None
        return "graded" if {"sentence1", "sentence2", "label"} <= set(obj) else None
    return None


def read_sohu(path: str | Path) -> SohuPairs:
    """Read a Sohu 2021 file in either layout (module docstring).

    Raises:
        ConfigError: a missing file. DataFormatError: neither layout, invalid JSON, a missing key, an empty text,
            a grade outside 0/3/5 or a contest label outside "0"/"1" (``file:line``).
    """
    path = Path(path)
    layout = sohu_layout(path)
    if layout is None:
        raise DataFormatError(path, 1, "expected a Sohu 2021 record: {source, target, labelA|labelB} or "
                                       "{sentence1, sentence2, label}")
    if layout == "graded":
        pairs = read_pair_jsonl(path)
        allowed = GRADES
    else:
        pairs = read_pair_jsonl(path, ("source", "target"), layout)
        allowed = (0, 1)
    for p in pairs:
        if p.label not in allowed:
            raise DataFormatError(path, p.line, f"label: expected one of {', '.join(map(str, allowed))}, found "
                                                f"{p.label!r}")
    return SohuPairs(pairs, layout, path)
