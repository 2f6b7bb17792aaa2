"""The router on a real tritonserver: on-demand load, eviction, single flight, fallback, cooldown,
streaming and the routing decision. Tests run in file order and share one server's state."""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from client import RouterClient
from client.api import InferenceServerException
from launcher import TritonServer

from .conftest import start_server, stop_server
from .router_setup import BROKEN, LLM, LLM_BF16, ONE_LLM_BUDGET_MB, start_router_server

pytestmark = pytest.mark.integration
QUESTION = "What is the capital of France?"
SHORT = {"sampling_parameters": {"max_tokens": 16, "temperature": 0}}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[TritonServer]:
    """This module's server (conftest's `http` and `grpc` clients talk to it)."""
    srv = start_router_server(tmp_path_factory.mktemp("router"), ["query_classifier", "router"],
                              TMR_MEMORY_BUDGET_MB=str(ONE_LLM_BUDGET_MB), TMR_FAILURE_THRESHOLD="1",
                              TMR_COOLDOWN_S="300", TMR_IDLE_UNLOAD_S="0")
    yield srv
    stop_server(srv)


def states(client: RouterClient) -> dict[str, str]:
    return {m["name"]: m["state"] for m in client.models()}


def loads_in_log(server: TritonServer, model: str) -> int:
    return len(re.findall(rf'"loading: {model}:1"', server.log_file.read_text(errors="replace")))


def test_unloaded_model_is_loaded_on_demand_and_answers(grpc: RouterClient) -> None:
    assert states(grpc).get(LLM) != "READY"
    text, decision = grpc.route(QUESTION, SHORT)
    assert "Paris" in text
    assert decision["model"] == LLM and decision["use_case"] == "agent" and decision["language"] == "en"
    assert decision["load_ms"] > 0 and decision["classifier_ms"] > 0 and decision["total_ms"] >= decision["load_ms"]
    assert decision["candidates"][0]["model"] == LLM and "chose" in decision["reason"]
    assert states(grpc)[LLM] == "READY"


def test_streaming_through_the_router(grpc: RouterClient, http: RouterClient) -> None:
    pieces: list[str] = []
    text, decision = grpc.route(QUESTION, {**SHORT, "stream": True}, on_piece=pieces.append)
    assert len(pieces) > 3 and "Paris" in "".join(pieces) and decision["model"] == LLM
    assert decision["load_ms"] == 0
    http_pieces: list[str] = []
    _, decision = http.route(QUESTION, {**SHORT, "stream": True}, on_piece=http_pieces.append)
    assert len(http_pieces) > 3 and decision["model"] == LLM


def test_budget_for_one_model_evicts_the_first(grpc: RouterClient) -> None:
    text, decision = grpc.route(QUESTION, {**SHORT, "model": LLM_BF16})
    assert decision["model"] == LLM_BF16 and text
    s = states(grpc)
    assert s[LLM_BF16] == "READY" and s[LLM] != "READY"
    assert s["query_classifier"] == "READY" and s["router"] == "READY"  # pinned


def test_concurrent_first_requests_cause_exactly_one_load(grpc: RouterClient, server: TritonServer) -> None:
    assert states(grpc)[LLM] != "READY"
    before = loads_in_log(server, LLM)
    results: list[dict] = []

    def ask() -> None:
        results.append(RouterClient(server.grpc_url, "grpc").route(QUESTION, {**SHORT, "model": LLM})[1])

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r["model"] for r in results] == [LLM] * 4
    assert loads_in_log(server, LLM) - before == 1


def test_request_in_flight_survives_a_competing_eviction(grpc: RouterClient, server: TritonServer) -> None:
    assert states(grpc)[LLM] == "READY"
    pieces: list[str] = []
    first = threading.Event()
    out: dict = {}

    def long_stream() -> None:
        out["text"], out["decision"] = RouterClient(server.grpc_url, "grpc").route(
            "Write a long story about a dragon.", {"stream": True, "model": LLM,
                                                   "sampling_parameters": {"max_tokens": 80, "temperature": 0}},
            on_piece=lambda p: (pieces.append(p), first.set()))

    t = threading.Thread(target=long_stream)
    t.start()
    assert first.wait(60)
    # A request for the other model now cannot evict the busy one: it is skipped, not the stream.
    _, competing = grpc.route(QUESTION, {**SHORT, "model": LLM_BF16})
    t.join()
    assert out["decision"]["model"] == LLM and len(pieces) > 20
    assert competing["model"] == LLM
    assert competing["skipped"][0]["model"] == LLM_BF16 and "memory budget" in competing["skipped"][0]["why"]
    assert states(grpc)[LLM] == "READY"


def test_model_with_broken_weights_falls_back(grpc: RouterClient, server: TritonServer) -> None:
    text, decision = grpc.route(QUESTION, {**SHORT, "model": BROKEN})
    assert decision["fallbacks"][0]["model"] == BROKEN and "load failed" in decision["fallbacks"][0]["error"]
    assert decision["model"] in (LLM, LLM_BF16) and "Paris" in text
    assert loads_in_log(server, BROKEN) == 1


def test_failing_model_cools_down(grpc: RouterClient, server: TritonServer) -> None:
    text, decision = grpc.route(QUESTION, {**SHORT, "model": BROKEN})
    assert decision["skipped"][0]["model"] == BROKEN and "cooling down" in decision["skipped"][0]["why"]
    assert decision["model"] in (LLM, LLM_BF16) and text
    assert loads_in_log(server, BROKEN) == 1  # no second attempt while cooling


def test_no_fallback_allowed_gives_a_clear_error(grpc: RouterClient) -> None:
    with pytest.raises(InferenceServerException, match="no model could serve use case 'agent'.*broken_llm"):
        grpc.route(QUESTION, {**SHORT, "model": BROKEN, "allow_fallback": False})


def test_bad_input_is_rejected_and_router_keeps_serving(grpc: RouterClient, http: RouterClient) -> None:
    with pytest.raises(InferenceServerException, match="options.use_case: 'chat' unknown"):
        grpc.route(QUESTION, {"use_case": "chat"})
    with pytest.raises(InferenceServerException, match="sampling_parameters.max_tokens: 0 is out of range"):
        grpc.route(QUESTION, {"sampling_parameters": {"max_tokens": 0}})
    with pytest.raises(InferenceServerException, match="text: empty"):
        http.route("  ", {})
    # This module's repository has no video_frames model: a clear error naming the step, not a crash.
    with pytest.raises(InferenceServerException, match="step model 'video_frames' failed: .*failed to load"):
        grpc.route("What happens in this clip?", {}, video=b"\x00\x00\x00\x18ftypmp42")
    assert "Paris" in grpc.route(QUESTION, SHORT)[0]


def test_metrics_count_decisions_loads_evictions_and_fallbacks(server: TritonServer) -> None:
    text = RouterClient(server.http_url).metrics(f"127.0.0.1:{server.metrics_port}")
    assert re.search(r'tmr_routing_decisions_total\{model="smollm2_135m_instruct",use_case="agent"\} \d+', text)
    assert re.search(r'tmr_fallbacks_total\{model="broken_llm",use_case="agent"\} 1', text)
    assert re.search(r'tmr_model_evictions_total\{model="smollm2_135m_instruct",reason="evicted"\} [1-9]', text)
    assert re.search(r'tmr_model_loads_total\{model="broken_llm",result="failed"\} 1', text)
    assert "tmr_model_load_duration_seconds_bucket" in text and "tmr_classifier_latency_seconds_count" in text


def test_idle_models_are_unloaded(tmp_path: Path) -> None:
    srv = start_server(["query_classifier", "router"], env={"TMR_IDLE_UNLOAD_S": "2"})
    try:
        client = RouterClient(srv.grpc_url, "grpc")
        assert client.route(QUESTION, SHORT)[1]["model"] == LLM
        deadline = time.monotonic() + 30
        while states(client).get(LLM) == "READY" and time.monotonic() < deadline:
            time.sleep(0.5)
        s = states(client)
        assert s[LLM] != "READY" and s["router"] == "READY" and s["query_classifier"] == "READY"
    finally:
        stop_server(srv)
