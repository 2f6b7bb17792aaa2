from __future__ import annotations

import os
from typing import Iterator

import pytest

from client import RouterClient
from model_router.launcher import TritonServer

LLM = "smollm2_135m_instruct"


def _stub_pids(server: TritonServer) -> list[int]:
    """Processes left in the server's process group (its Python stubs)."""
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.getpgid(int(pid)) == server.proc.pid and int(pid) != server.proc.pid:
                    pids.append(int(pid))
            except ProcessLookupError:
                pass
    return pids


def start_server(load: list[str], **kwargs) -> TritonServer:
    return TritonServer(load=load, **kwargs).start(timeout=300)


def stop_server(server: TritonServer) -> None:
    rc = server.stop()
    assert not _stub_pids(server), "stub processes outlived tritonserver"
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
