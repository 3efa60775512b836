"""Data of the prompt recipes (``train pet``, ``train ptuning``, ``eval nsp-zeroshot``): FewCLUE folds, the PET
article's sentiment set with 1% labelled, sst2, or classification files of your own; plus each task's default
pattern and verbalizer.

* ``fewclue/<task>`` (:mod:`kexue.data.readers.fewclue`): ``train_<fold>`` labelled, ``dev_<fold>`` selects the
  checkpoint, ``test_public`` is the test set, ``unlabeled.json`` (where FewCLUE ships one) the unlabelled texts.
* ``sentiment_zh`` (https://kexue.fm/archives/7764): the **first** ``--labelled-fraction`` (default 1%, 168 of
  16,883) of the training file is labelled, the other 99% is the unlabelled text of semi-supervised PET, as in the
  article's code; valid selects, test is the test set. ``sst2`` the same way (English patterns).
* a path: a classification folder or file of your own (:func:`kexue.data.readers.classification.load_classification`),
  all of its training split labelled unless ``--labelled-fraction`` says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kexue.data.readers.classification import CLASSIFICATION_DATASETS, load_classification
from kexue.data.readers.fewclue import FEWCLUE_TASKS, FewCLUEExample, fewclue_file, fewclue_label_names, read_fewclue
from kexue.errors import ConfigError

PromptExample = FewCLUEExample
"""The record every prompt recipe works on (FewCLUE's, also used for the other datasets)."""

ARTICLE_FRACTION = 0.01


@dataclass
class PromptSplits:
    """A prompt task's data: labelled ``train``, ``dev``, ``test`` and ``unlabelled`` records, the label names in
    class order, and whether labels are per-example candidates (ChID)."""

    name: str
    train: list[PromptExample]
    dev: list[PromptExample]
    test: list[PromptExample]
    unlabelled: list[PromptExample] = field(default_factory=list)
    label_names: list[str] = field(default_factory=list)
    candidates: bool = False


# default (pattern, {label index: words}); None words = the label names (or ChID's candidates)
PRESETS: dict[str, tuple[str, dict[int, list[str]] | None]] = {
    "sentiment_zh": ("{mask}满意。{text}", {0: ["不"], 1: ["很"]}),             # the article's P1
    "sst2": ("{text} it was {mask} .", {0: ["terrible"], 1: ["great"]}),
    "eprstmt": ("{mask}满意。{text}", {0: ["不"], 1: ["很"]}),
    "tnews": ("下面报导一则{mask}新闻。{text}", None),                           # the article's short-news pattern
    "iflytek": ("这是一款{mask}类应用。{text}", None),
    "csldcp": ("这是一篇{mask}论文。{text}", None),
    "bustm": ("{text_a}？{mask}，{text_b}", {0: ["不"], 1: ["是"]}),
    "ocnli": ("{text_a}？{mask}，{text_b}", {0: ["是"], 1: ["或"], 2: ["不"]}),
    "csl": ("关键词{mask}对：{text_b}。{text_a}", {0: ["不"], 1: ["都"]}),
    "cluewsc": ("{text_a}{text_b}？{mask}", {0: ["不"], 1: ["是"]}),
    "chid": ("{text_a}{mask}{text_b}", None),
}
NSP_PRESETS = {"sentiment_zh": "{label}", "eprstmt": "这次买的东西很{label}", "tnews": "这是一篇{label}新闻",
               "iflytek": "这是一款{label}类应用", "csldcp": "这是一篇{label}论文", "sst2": "it was {label} ."}
NSP_LABEL_WORDS = {"sentiment_zh": ["差", "好"], "eprstmt": ["差", "好"], "sst2": ["terrible", "great"]}


def eval_subset(rows: list[PromptExample], limit: int | None) -> list[PromptExample]:
    """``--eval-limit``: all rows, or a fixed random sample of ``limit`` of them (seed 0, file order kept) -- not
    the first ``limit``: FewCLUE's test_public files are sorted by label."""
    if limit is None or limit >= len(rows):
        return list(rows)
    import random

    keep = sorted(random.Random(0).sample(range(len(rows)), limit))
    return [rows[i] for i in keep]


def task_key(data: str) -> str:
    """``fewclue/tnews`` -> ``tnews``; other names unchanged (the key of :data:`PRESETS`)."""
    return data.split("/", 1)[1] if data.startswith("fewclue/") else data


def pattern_input(example: PromptExample) -> dict[str, str]:
    """The fields a pattern reads: ``text_a``/``text_b``; CLUEWSC's ``text_b`` asks about its spans, ChID's text is
    cut at its ``#idiom#`` blank into ``text_a`` / ``text_b``."""
    if example.task == "chid":
        before, after = example.text_a.split("#idiom#", 1)
        return {"text_a": before, "text_b": after.replace("#idiom#", "")}
    if example.task == "cluewsc" and example.spans is not None:
        return {"text_a": example.text_a, "text_b": f"其中{example.spans[1]}指的是{example.spans[0]}"}
    out = {"text_a": example.text_a}
    if example.text_b is not None:
        out["text_b"] = example.text_b
    return out


def _from_classification(data: str, fraction: float | None) -> PromptSplits:
    def convert(rows):
        return [PromptExample(data, r.text, r.text_pair, r.label, None if r.label is None else str(r.label),
                              line=r.line) for r in rows]

    train = convert(load_classification(data, "train"))
    dev, test = convert(load_classification(data, "dev")), convert(load_classification(data, "test"))
    registered = data in CLASSIFICATION_DATASETS
    fraction = (ARTICLE_FRACTION if registered else 1.0) if fraction is None else fraction
    n = int(len(train) * fraction)
    if n < 1:
        raise ConfigError(f"--labelled-fraction {fraction}: leaves no labelled example of {len(train)}")
    labels = sorted({r.label for r in train[:n] + dev + test if r.label is not None})
    names = ["negative", "positive"] if registered else [str(i) for i in range(max(labels) + 1)]
    unlabelled = [PromptExample(data, r.text_a, r.text_b, line=r.line) for r in train[n:]]
    return PromptSplits(data, train[:n], dev, test, unlabelled, names)


def load_prompt_data(data: str, fold: str = "0", labelled_fraction: float | None = None) -> PromptSplits:
    """Load the splits of ``--data`` (see the module docstring).

    Raises:
        ConfigError: an unknown FewCLUE task or fold (``--data``, ``--fold``), a fraction outside (0, 1]
            (``--labelled-fraction``); DataFormatError: a malformed line.
    """
    if labelled_fraction is not None and not 0 < labelled_fraction <= 1:
        raise ConfigError(f"--labelled-fraction: expected a fraction in (0, 1], got {labelled_fraction}")
    if not data.startswith("fewclue/"):
        return _from_classification(data, labelled_fraction)
    task = task_key(data)
    if task not in FEWCLUE_TASKS:
        raise ConfigError(f"--data fewclue/{task}: expected one of {', '.join('fewclue/' + t for t in FEWCLUE_TASKS)}")
    train = read_fewclue(task, "train", fold)
    if labelled_fraction is not None:
        train = train[:max(1, int(len(train) * labelled_fraction))]
    try:
        fewclue_file(task, "unlabeled")
        unlabelled = read_fewclue(task, "unlabeled")
    except ConfigError:
        unlabelled = []
    return PromptSplits(data, train, read_fewclue(task, "dev", fold), read_fewclue(task, "test"), unlabelled,
                        fewclue_label_names(task), candidates=task == "chid")


def default_pattern(data: str) -> tuple[str, dict[int, list[str]] | None]:
    """The task's default ``(pattern, verbalizer)``; ``None`` words mean "the label names".

    Raises:
        ConfigError: no preset for ``data`` (a path): naming ``--pattern`` and ``--verbalizer``.
    """
    key = task_key(data)
    if key not in PRESETS:
        raise ConfigError(f"--pattern / --verbalizer: no default for --data {data}; give both (e.g. --pattern "
                          "'{mask}满意。{text}' --verbalizer '0=不,1=很')")
    return PRESETS[key]
