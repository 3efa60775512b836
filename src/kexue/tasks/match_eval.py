"""``kexue eval match``: a trained match model on a labelled pair file, including the Sohu 2021 fragments.

A file with 0/1 labels (any pair format, or the Sohu contest layout with ``labelA``/``labelB``) is scored on its own
criterion; a graded Sohu file (labels 0/3/5, :mod:`kexue.data.readers.sohu`) is scored on both criteria, A
(``label >= 3``) and B (``label == 5``), and ``score`` is the mean of their positive-class F1, the contest's score
(https://kexue.fm/archives/8337, spec §5).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kexue.data.readers.pairs import read_pairs
from kexue.data.readers.sohu import GRADES, SohuPairs, read_sohu, sohu_layout
from kexue.errors import ConfigError, DataFormatError
from kexue.tasks.match import binary_scores, make_features, predict
from kexue.tasks.match_model import MatchModel, load_match_model, resolve_match_dir


def task_id_for(model: MatchModel, task: str | None) -> int:
    """The task id to condition on: ``--task``'s position in the model's tasks; without ``--task``, 0 for a model
    that cannot tell tasks apart (unconditional, or trained on one task).

    Raises:
        ConfigError: an unknown ``--task``, or none given for a conditional multi-task model.
    """
    if task is not None:
        if task not in model.tasks:
            raise ConfigError(f"--task {task}: the model was trained on {', '.join(model.tasks)}")
        return model.tasks.index(task)
    if model.conditional and len(model.tasks) > 1:
        raise ConfigError(f"--task: this model conditions on the task; pick one of {', '.join(model.tasks)}")
    return 0


def read_labelled(path: str | Path) -> SohuPairs:
    """A labelled pair file as :class:`SohuPairs`: the Sohu layouts as such, other 0/1 files as one criterion
    (``layout="labelA"`` standing for "its own labels").

    Raises:
        DataFormatError: an unlabelled pair, or labels that are neither all 0/1 nor all Sohu grades 0/3/5.
    """
    path = Path(path).expanduser()
    if sohu_layout(path) in ("labelA", "labelB"):
        return read_sohu(path)
    pairs = read_pairs(path)
    for p in pairs:
        if p.label is None:
            raise DataFormatError(path, p.line, "expected a labelled pair, found no label")
    labels = {p.label for p in pairs}
    if labels <= {0, 1}:
        return SohuPairs(pairs, "labelA", path)
    if labels <= set(GRADES):
        return SohuPairs(pairs, "graded", path)
    bad = next(p for p in pairs if p.label not in (*GRADES, 1))
    raise DataFormatError(path, bad.line, f"label: expected 0/1 (or the Sohu grades 0/3/5), found {bad.label!r}")


def evaluate_match_file(model_dir: str | Path, data: str | Path, task: str | None = None,
                        batch_size: int = 64) -> dict[str, Any]:
    """Accuracy and positive-class F1 x100 per criterion of a saved match model on a labelled file.

    Returns:
        ``{"model", "data", "task", "layout", "pairs", "criteria": {"A": {"accuracy", "f1"}, ...}, "score"}``
        (``score``: the mean F1 over the criteria).

    Raises:
        ConfigError: no saved match model at ``model_dir``, a bad ``--task``. DataFormatError: a malformed file.
    """
    labelled = read_labelled(data)
    model = load_match_model(resolve_match_dir(model_dir))
    tid = task_id_for(model, task)
    pairs = [(p.text_a, p.text_b, 0) for p in labelled.pairs]
    pred = predict(model, make_features(model, pairs, tid), batch_size).tolist()
    criteria = {c: binary_scores(pred, labelled.labels(c)) for c in labelled.criteria}
    return {"model": str(model_dir), "data": str(data), "task": model.tasks[tid], "layout": labelled.layout,
            "pairs": len(pairs), "criteria": criteria,
            "score": sum(m["f1"] for m in criteria.values()) / len(criteria)}
