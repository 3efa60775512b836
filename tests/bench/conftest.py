"""Loading a bench/ script as a module, for tests of its pure logic."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def load_bench():
    """``load_bench("matching")`` imports bench/matching.py (with bench/ on sys.path for its ``_results``)."""
    sys.path.insert(0, str(BENCH))
    try:
        def load(name: str):
            spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
        yield load
    finally:
        sys.path.remove(str(BENCH))
