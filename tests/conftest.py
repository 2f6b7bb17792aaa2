"""Shared fixtures. Integration fixtures start a real tritonserver and stop it afterwards."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "datasets" / "queries_dev.jsonl").exists():
        pytest.skip("../shared is absent (a user's clone has none)")
    return SHARED
