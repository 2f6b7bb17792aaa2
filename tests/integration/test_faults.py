"""Faults on a real tritonserver: a target's stub killed mid-request, the memory budget filled,
a model whose load fails. Each ends in a fallback or a clear error; the router stays up, the
budget holds, and no stub outlives the server (conftest.stop_server checks)."""
from __future__ import annotations

import os
import re
import signal
import threading
import time
import urllib.request
from typing import Iterator

import pytest

from client import RouterClient
from client.api import InferenceServerException
from launcher import TritonServer

from .conftest import stop_server
from .router_setup import BROKEN, LLM, LLM_BF16, ONE_LLM_BUDGET_MB, start_router_server

pytestmark = pytest.mark.integration
QUESTION = "What is the capital of France?"
SHORT = {"sampling_parameters": {"max_tokens": 16, "temperature": 0}}
LONG = {"stream": True, "model": LLM, "allow_fallback": False, "timeout_s": 20,
        "sampling_parameters": {"max_tokens": 400, "temperature": 0}}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[TritonServer]:
    srv = start_router_server(tmp_path_factory.mktemp("faults"), ["query_classifier", "router"],
                              TMR_MEMORY_BUDGET_MB=str(ONE_LLM_BUDGET_MB), TMR_FAILURE_THRESHOLD="1",
                              TMR_COOLDOWN_S="2", TMR_IDLE_UNLOAD_S="0")
    yield srv
    stop_server(srv)


def stub_pid(server: TritonServer, model: str) -> int:
    """The stub process serving `model` (its instance name, e.g. <model>_0_0, is on its command line)."""
    for pid in server.group_pids():
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
        if f"{model}_0_0".encode() in args:
            return pid
    raise AssertionError(f"no stub for {model}")


def memory_used_mb(server: TritonServer) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).read().decode()
    return float(re.search(r'tmr_memory_used_mb\{kind="host"\} ([0-9.e+]+)', text).group(1))


@pytest.fixture
def roomy_server(tmp_path) -> Iterator[TritonServer]:
    """Both LLMs fit: Triton 24.10 cannot unload a model whose stub died, so none can be evicted for it."""
    srv = start_router_server(tmp_path, ["query_classifier", "router", LLM], TMR_FAILURE_THRESHOLD="1",
                              TMR_COOLDOWN_S="300")
    yield srv
    stop_server(srv)  # the dead model's unload never ends: the launcher kills the server, and no stub outlives it


def test_killing_a_target_stub_mid_request_is_a_clear_error_then_service_resumes(roomy_server: TritonServer) -> None:
    server = roomy_server
    grpc = RouterClient(server.grpc_url, "grpc")
    pieces: list[str] = []
    first = threading.Event()
    out: dict = {}

    def long_stream() -> None:
        try:
            RouterClient(server.grpc_url, "grpc", timeout=120).route(
                "Write a very long story about a dragon.", LONG, on_piece=lambda p: (pieces.append(p), first.set()))
        except InferenceServerException as exc:
            out["error"] = str(exc)

    t = threading.Thread(target=long_stream)
    t.start()
    assert first.wait(60), "no first piece"
    os.kill(stub_pid(server, LLM), signal.SIGKILL)
    t.join(60)
    assert not t.is_alive(), "the killed request hung"
    # A clear error naming the model, at options.timeout_s: Triton never ends the dead stub's stream.
    assert "error" in out and f"model {LLM!r} failed mid-stream" in out["error"] and "20 s" in out["error"], out
    # The router never went down: the next request is served by the fallback, the dead model skipped.
    text, decision = grpc.route(QUESTION, SHORT)
    assert "Paris" in text and decision["model"] == LLM_BF16, decision
    assert decision["skipped"][0]["model"] == LLM and "cooling down" in decision["skipped"][0]["why"]
    # Asked for by name, the dead model is a quick, clear error (Triton: the stub is not healthy).
    started = time.monotonic()
    with pytest.raises(InferenceServerException, match="is not healthy|cooling down"):
        grpc.route(QUESTION, {**SHORT, "model": LLM, "allow_fallback": False})
    assert time.monotonic() - started < 10


def test_filling_the_budget_evicts_and_never_exceeds_it(grpc: RouterClient, server: TritonServer) -> None:
    for model in (LLM_BF16, LLM, LLM_BF16, LLM):
        text, decision = grpc.route(QUESTION, {**SHORT, "model": model})
        assert decision["model"] == model and "Paris" in text
        ready = {m["name"] for m in grpc.models() if m["state"] == "READY"}
        assert not {LLM, LLM_BF16} <= ready, ready  # never both: they do not fit together
        assert memory_used_mb(server) <= ONE_LLM_BUDGET_MB


def test_a_model_whose_load_fails_falls_back_or_is_a_clear_error(grpc: RouterClient, server: TritonServer) -> None:
    text, decision = grpc.route(QUESTION, {**SHORT, "model": BROKEN})
    assert decision["fallbacks"][0]["model"] == BROKEN and "load failed" in decision["fallbacks"][0]["error"]
    assert "Paris" in text and decision["model"] in (LLM, LLM_BF16)
    time.sleep(2.5)  # past its cooldown: tried again, and without fallback its failure is the answer
    with pytest.raises(InferenceServerException, match=f"{BROKEN}.*load failed"):
        grpc.route(QUESTION, {**SHORT, "model": BROKEN, "allow_fallback": False})
    assert memory_used_mb(server) <= ONE_LLM_BUDGET_MB
    assert "Paris" in grpc.route(QUESTION, SHORT).text
