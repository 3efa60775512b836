"""results.json must be valid JSON: a NaN metric (e.g. Spearman of a constant prediction) is written as null."""

import json
import math

from kexue.tasks.common import jsonable


def test_non_finite_floats_become_null_and_strict_json_accepts_the_result():
    results = {"after": {"dev": {"spearman": float("nan"), "f1": 80.5}}, "range": (0.0, float("inf")), 3: -math.inf}
    out = jsonable(results)
    assert out == {"after": {"dev": {"spearman": None, "f1": 80.5}}, "range": [0.0, None], "3": None}
    text = json.dumps(out, allow_nan=False)  # raises ValueError if any NaN/inf survived
    assert json.loads(text) == out
