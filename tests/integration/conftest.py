from __future__ import annotations

from typing import Iterator

import pytest

from client import RouterClient
from launcher import TritonServer

LLM = "smollm2_135m_instruct"


def start_server(load: list[str], **kwargs) -> TritonServer:
    return TritonServer(load=load, **kwargs).start(timeout=300)


def stop_server(server: TritonServer) -> None:
    rc = server.stop()
    assert not server.group_pids(), "stub processes outlived tritonserver"
    assert rc is not None


@pytest.fixture(scope="session")
def server() -> Iterator[TritonServer]:
    """One server for the suite, with the LLM loaded; tests that need another setup start their own."""
    srv = start_server([LLM])
    yield srv
    stop_server(srv)


@pytest.fixture
def http(server: TritonServer) -> RouterClient:
    return RouterClient(server.http_url, "http")


@pytest.fixture
def grpc(server: TritonServer) -> RouterClient:
    return RouterClient(server.grpc_url, "grpc")
