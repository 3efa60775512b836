"""The data of ``kexue train match``: which pair tasks it knows, their splits, how each is made binary, and the
overlap guard that keeps every evaluated pair out of training.

Tasks (all binary 0/1 after the rule stated here; splits read with :mod:`kexue.data.registry` and
:mod:`kexue.data.readers.pairs`):

=================  ==========================================  ==========================  ==========================
task               train                                       valid (selects ``best/``)   test (reported)
=================  ==========================================  ==========================  ==========================
``afqmc``          ``train.txt`` minus the valid cut           seeded cut of ``train.txt``  ``dev.txt`` (test.txt has
                                                                                            no labels)
``stsb_zh``        ``STS-B.train.data``, score >= 3 -> 1        ``STS-B.valid.data``         ``STS-B.test.data``
``simclue_sample`` ``train_pair_1w.json`` minus the valid cut  seeded cut of it            ``test_public.json``
=================  ==========================================  ==========================  ==========================

STS-B scores 0..5 are binarised as ``score >= 3`` (3 = "roughly equivalent" in the STS annotation guide): 52 % of
the training pairs are positive.

**Overlaps.** SimCLUE (``simclue_sample/SOURCE.md``) re-splits LCQMC, AFQMC, Chinese STS-B and others: its
``test_public`` holds 1,511 pairs of ``afqmc/dev.txt``, 765 of the STS-B test file and a few of STS-B train/valid;
its ``train_pair_1w`` holds about 110 pairs of AFQMC train and about 10 of STS-B train. kexue never trains on
``test_public``, and :func:`load_match_tasks` removes from every task's training data each pair (order-insensitive,
exact text) that occurs in any evaluated split of any task of the run, and reports how many it removed; so no
evaluated pair is ever a training pair. (Sets that overlap SimCLUE's training file but are not among these tasks,
such as ATEC and LCQMC, are not evaluated by this recipe.)

Sources: "搜狐文本匹配:基于条件LayerNorm的多任务baseline", https://kexue.fm/archives/8337 (spec §5);
CLUEbenchmark/SimCLUE.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kexue.data.readers.pairs import read_pair_jsonl
from kexue.data.records import SentencePair
from kexue.data.registry import data_root, load_pairs
from kexue.errors import ConfigError, DataFormatError


def _binary(pair: SentencePair, where: str) -> int:
    if pair.label not in (0, 1):
        raise DataFormatError(where, pair.line, f"expected a label 0 or 1, found {pair.label!r}")
    return int(pair.label)


def _sts_binary(pair: SentencePair, where: str) -> int:
    if pair.label is None or not 0 <= pair.label <= 5:
        raise DataFormatError(where, pair.line, f"expected a score in 0..5, found {pair.label!r}")
    return int(pair.label >= 3)


@dataclass(frozen=True)
class MatchTask:
    """One known task: where its splits come from and how a pair's label becomes 0/1.

    Attributes:
        name: the ``--tasks`` name.
        read: ``read(split)`` -> pairs, for ``split`` in ``train``/``valid``/``test`` (``valid`` is ``None`` when it
            is cut from train).
        binarise: ``binarise(pair, where)`` -> 0/1 (raises DataFormatError naming ``where:line``).
        rule: the binarisation and split rule in words (recorded in results.json).
    """

    name: str
    read: Callable[[str], list[SentencePair] | None]
    binarise: Callable[[SentencePair, str], int]
    rule: str


def _simclue(split: str) -> list[SentencePair] | None:
    file = {"train": "train_pair_1w.json", "test": "test_public.json"}.get(split)
    return None if file is None else read_pair_jsonl(data_root() / "simclue_sample" / file)


MATCH_TASKS: dict[str, MatchTask] = {t.name: t for t in (
    MatchTask("afqmc", lambda s: {"train": lambda: load_pairs("afqmc", "train"),
                                  "test": lambda: load_pairs("afqmc", "dev")}.get(s, lambda: None)(),
              _binary, "labels 0/1; valid cut from train.txt, test = dev.txt (test.txt is unlabelled)"),
    MatchTask("stsb_zh", lambda s: load_pairs("stsb_zh", {"valid": "dev"}.get(s, s)), _sts_binary,
              "score >= 3 -> 1, else 0; the dataset's own train/valid/test files"),
    MatchTask("simclue_sample", _simclue, _binary,
              "labels 0/1; train_pair_1w.json with a valid cut, test = test_public.json (never trained on)"),
)}
"""The tasks ``kexue train match --tasks`` accepts."""


@dataclass
class TaskData:
    """The binary pairs ``(text_a, text_b, label)`` of one task's splits and what was done to them."""

    name: str
    train: list[tuple[str, str, int]]
    valid: list[tuple[str, str, int]]
    test: list[tuple[str, str, int]]
    removed_overlaps: int
    rule: str


def parse_tasks(text: str) -> tuple[str, ...]:
    """``--tasks T1,T2,...`` as a tuple of known task names (order kept; the index is the task id).

    Raises:
        ConfigError: empty, repeated or unknown names (the message lists the known ones).
    """
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    if not names:
        raise ConfigError(f"--tasks: expected comma-separated task names ({', '.join(MATCH_TASKS)}), got {text!r}")
    unknown = [t for t in names if t not in MATCH_TASKS]
    if unknown:
        raise ConfigError(f"--tasks: unknown task(s) {', '.join(unknown)}; known: {', '.join(MATCH_TASKS)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"--tasks: a task is named twice in {text!r}")
    return names


def pair_key(a: str, b: str) -> tuple[str, str]:
    """The order-insensitive identity of a pair (the overlap test of SimCLUE's SOURCE.md): its two stripped texts,
    sorted."""
    x, y = sorted((a.strip(), b.strip()))
    return x, y


def _binarised(task: MatchTask, pairs: Sequence[SentencePair], where: str) -> list[tuple[str, str, int]]:
    return [(p.text_a, p.text_b, task.binarise(p, where)) for p in pairs]


def load_match_tasks(names: Sequence[str], *, valid_size: int, seed: int, train_limit: int | None = None,
                     eval_limit: int | None = None) -> list[TaskData]:
    """Read, binarise and de-overlap every task of ``names`` (see the module table).

    Args:
        valid_size: pairs cut (shuffled by ``seed``) from train as the valid split, where a task has no own valid.
        train_limit / eval_limit: keep only the first N training pairs / pairs of each evaluated split (after the
            cut and the overlap removal).

    Raises:
        ConfigError: a missing file, ``valid_size`` < 2 or not smaller than the training split.
        DataFormatError: a malformed line or a label the task's rule cannot binarise (``file:line``).
    """
    if valid_size < 2:
        raise ConfigError(f"--valid-size: expected an integer >= 2, got {valid_size}")
    loaded = []
    for name in names:
        task = MATCH_TASKS[name]
        train = _binarised(task, task.read("train"), f"{name} train")
        own_valid = task.read("valid")
        if own_valid is None:
            if valid_size >= len(train):
                raise ConfigError(f"--valid-size {valid_size}: {name} has only {len(train)} training pairs")
            order = list(range(len(train)))
            random.Random(seed).shuffle(order)
            cut = set(order[:valid_size])
            valid = [train[i] for i in sorted(cut)]
            train = [p for i, p in enumerate(train) if i not in cut]
        else:
            valid = _binarised(task, own_valid, f"{name} valid")
        test = _binarised(task, task.read("test"), f"{name} test")
        if eval_limit is not None:
            valid, test = valid[:eval_limit], test[:eval_limit]
        loaded.append([name, train, valid, test, task.rule])
    evaluated = {pair_key(a, b) for _, _, valid, test, _ in loaded for a, b, _y in valid + test}
    out = []
    for name, train, valid, test, rule in loaded:
        kept = [p for p in train if pair_key(p[0], p[1]) not in evaluated]
        removed = len(train) - len(kept)
        kept = kept if train_limit is None else kept[:train_limit]
        out.append(TaskData(name, kept, valid, test, removed, rule))
    return out
