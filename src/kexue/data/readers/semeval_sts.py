"""Reader for the SemEval STS 2012–2016 English test sets as SentEval ships them (``$KEXUE_DATA/sts12_16_en``).

Each year's folder ``STS12`` … ``STS16`` holds, per sub-set, an input file ``STS.input.<set>.txt`` (2016:
``STS2016.input.<set>.txt``) with ``sentence1 \\t sentence2`` (2016: two more source-note fields, unused) and a gold
file ``STS.gs.<set>.txt`` / ``STS2016.gs.<set>.txt`` with one 0–5 score per line, aligned line by line. An **empty**
gold line marks a pair that was not scored and is dropped (STS15, STS16). The usual report (SimCSE, SentEval's "all"
setting) is the Spearman correlation over all scored pairs of a year, the sub-sets concatenated.

Source: the folder's SOURCE.md (scored-pair counts: STS12 3108, STS13 1500, STS14 3750, STS15 3000, STS16 1186).
"""

from __future__ import annotations

from pathlib import Path

from kexue.data.readers.pairs import parse_label
from kexue.data.readers.text_lines import iter_lines
from kexue.data.records import SentencePair
from kexue.data.registry import data_root
from kexue.errors import ConfigError, DataFormatError

YEARS = ("STS12", "STS13", "STS14", "STS15", "STS16")


def read_semeval_subset(input_path: str | Path, gold_path: str | Path) -> list[SentencePair]:
    """The scored pairs of one sub-set: input and gold files read line by line together.

    Returns:
        Pairs with ``label`` the float gold score and ``id`` ``"<set file stem>:<line>"``; unscored lines dropped.

    Raises:
        ConfigError: a missing file. DataFormatError: a different number of input and gold lines, an input line with
            fewer than two fields or an empty sentence, a score that is no number in 0..5 (``file:line``).
    """
    input_path, gold_path = Path(input_path), Path(gold_path)
    inputs = list(iter_lines(input_path, "STS input file"))
    golds = list(iter_lines(gold_path, "STS gold file"))
    while golds and not golds[-1][1].strip() and len(golds) > len(inputs):
        golds.pop()
    if len(inputs) != len(golds):
        raise DataFormatError(gold_path, None, f"expected one gold line per input line ({len(inputs)} in "
                                               f"{input_path.name}), found {len(golds)}")
    pairs = []
    for (line_no, text), (_, gold) in zip(inputs, golds):
        if not gold.strip():
            continue
        fields = text.split("\t")
        if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
            raise DataFormatError(input_path, line_no, "expected sentence1<TAB>sentence2 (two non-empty fields)")
        score = float(parse_label(gold, gold_path, line_no, "score"))
        if not 0.0 <= score <= 5.0:
            raise DataFormatError(gold_path, line_no, f"score: expected a number in 0..5, found {score}")
        pairs.append(SentencePair(fields[0], fields[1], score, f"{input_path.stem}:{line_no}", line_no))
    return pairs


def read_semeval_year(year: str, root: str | Path | None = None) -> dict[str, list[SentencePair]]:
    """Every sub-set of one year, ``{sub-set name: scored pairs}`` in file-name order.

    Args:
        year: ``STS12`` … ``STS16``.
        root: the folder holding ``STS12`` … (default ``$KEXUE_DATA/sts12_16_en``).

    Raises:
        ConfigError: an unknown year, a missing folder, or a folder without input files.
    """
    if year not in YEARS:
        raise ConfigError(f"--sts-year: expected one of {', '.join(YEARS)}, got {year!r}")
    folder = (Path(root) if root is not None else data_root() / "sts12_16_en") / year
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder (expected the SentEval {year} test set)")
    inputs = sorted(folder.glob("STS*.input.*.txt"))
    if not inputs:
        raise ConfigError(f"{folder}: no STS*.input.*.txt files")
    out = {}
    for path in inputs:
        name = path.name.split(".input.", 1)[1][:-len(".txt")]
        gold = path.with_name(path.name.replace(".input.", ".gs."))
        out[name] = read_semeval_subset(path, gold)
    return out


def read_semeval_all(year: str, root: str | Path | None = None) -> list[SentencePair]:
    """All scored pairs of one year, the sub-sets concatenated (the "all" setting)."""
    return [p for pairs in read_semeval_year(year, root).values() for p in pairs]
