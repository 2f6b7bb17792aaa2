"""Shared fixtures. Integration fixtures start a real tritonserver and stop it afterwards."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "python_backends" / "transformers"))  # backend modules, for unit tests
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "datasets" / "queries_dev.jsonl").exists():
        pytest.skip("../shared is absent (a user's clone has none)")
    return SHARED
