"""Shared fixtures. Integration fixtures start a real tritonserver and stop it afterwards."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from client import RouterClient
from launcher import TritonServer
from tests.integration.conftest import LLM, start_server, stop_server
from tests.integration.observe import leave_as_found

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "datasets" / "queries_dev.jsonl").exists():
        pytest.skip("../shared is absent (a user's clone has none)")
    return SHARED


# The one shared server: integration and browser tests use the same (one LLM load for the suite).
@pytest.fixture(scope="session")
def server() -> Iterator[TritonServer]:
    """One server for the suite, with the LLM loaded; tests that need another setup start their own."""
    srv = start_server([LLM])
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module", autouse=True)
def _shared_server_left_as_found(request: pytest.FixtureRequest) -> Iterator[None]:
    """A module that uses the session server leaves it with the models it found loaded, so that modules
    pass alone and in any order. Modules with a `server` of their own (or none) are left alone."""
    uses_shared = "server" not in vars(request.module) and any(
        "server" in item.fixturenames for item in request.session.items if item.module is request.module)
    if not uses_shared:
        yield
        return
    with leave_as_found(request.getfixturevalue("server")):
        yield


@pytest.fixture(scope="module")
def router(server: TritonServer) -> TritonServer:
    """The shared server with the classifier and the router loaded (the router loads its metrics model);
    the module's teardown (_shared_server_left_as_found) unloads what the module loaded."""
    admin = RouterClient(server.http_url)
    for model in ("query_classifier", "router"):
        if not admin.is_ready(model):
            admin.load(model)
    return server
