"""Shared fixtures: the real-data folder, a small torch thread budget, deterministic seeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def kexue_data() -> Path:
    """The folder of real datasets: ``$KEXUE_DATA``, else ``../shared/data`` beside the repository.

    A missing folder is a failure, not a skip: the suite's real-data checks must run.
    """
    root = Path(os.environ.get("KEXUE_DATA", REPO.parent / "shared" / "data"))
    if not root.is_dir():
        pytest.fail(f"real data folder not found: {root} (set KEXUE_DATA)")
    return root


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
