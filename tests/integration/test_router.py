"""The router on a real tritonserver: on-demand load, eviction, single flight, fallback, cooldown,
streaming and the routing decision. Each test sets up the state it needs (which model is loaded)
through the router itself, so that the tests pass in any order."""
from __future__ import annotations

import re
import threading
import time
from typing import Iterator

import pytest

from client import RouterClient
from client.api import InferenceServerException
from launcher import TritonServer

from .conftest import start_server, stop_server
from .observe import UNLOAD_WITHIN_S, MemoryWatch, model_states, wait_for
from .router_setup import BROKEN, LLM, LLM_BF16, ONE_LLM_BUDGET_MB, start_router_server

pytestmark = pytest.mark.integration
QUESTION = "What is the capital of France?"
SHORT = {"sampling_parameters": {"max_tokens": 16, "temperature": 0}}
CALL_TIMEOUT_S = 120.0  # options.timeout_s of the long requests: it bounds the waits on them too
IDLE_UNLOAD_S = 3.0
# How long an idle model may take to go: idle_unload_s, one round of the router's reaper (1 s), then
# Triton's unload, which the loader waits for up to its unload_timeout_s.
IDLE_GONE_WITHIN_S = IDLE_UNLOAD_S + 1 + UNLOAD_WITHIN_S


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[TritonServer]:
    """This module's server (conftest's `http` and `grpc` clients talk to it): a one-LLM budget."""
    srv = start_router_server(tmp_path_factory.mktemp("router"), ["query_classifier", "router"],
                              TMR_MEMORY_BUDGET_MB=str(ONE_LLM_BUDGET_MB), TMR_FAILURE_THRESHOLD="1",
                              TMR_COOLDOWN_S="300", TMR_IDLE_UNLOAD_S="0")
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory) -> Iterator[TritonServer]:
    """The shipped repository and registry, models unloaded after IDLE_UNLOAD_S idle."""
    srv = start_server(["query_classifier", "router"], log_file=tmp_path_factory.mktemp("idle") / "tritonserver.log",
                       env={"TMR_IDLE_UNLOAD_S": str(IDLE_UNLOAD_S)})
    yield srv
    stop_server(srv)


def states(client: RouterClient) -> dict[str, str]:
    return model_states(client)


def loads_in_log(server: TritonServer, model: str) -> int:
    """Triton's own count of load attempts, from this server's log (a fresh file: router_setup)."""
    return len(re.findall(rf'"loading: {model}:1"', server.log_file.read_text(errors="replace")))


def serving(client: RouterClient, model: str) -> dict:
    """Have the router serve `model` (loading it, evicting the other LLM: one fits); its decision."""
    decision = client.route(QUESTION, {**SHORT, "model": model}).decision
    assert decision["model"] == model, decision
    return decision


@pytest.fixture(scope="module")
def broken_first_try(server: TritonServer) -> dict:
    """The first request for the model with broken weights (it then cools down for the module's rest)."""
    client = RouterClient(server.grpc_url, "grpc")
    before = loads_in_log(server, BROKEN)
    text, decision = client.route(QUESTION, {**SHORT, "model": BROKEN})
    return {"text": text, "decision": decision, "loads": loads_in_log(server, BROKEN) - before}


def test_unloaded_model_is_loaded_on_demand_and_answers(idle_server: TritonServer) -> None:
    grpc = RouterClient(idle_server.grpc_url, "grpc")
    assert wait_for(lambda: states(grpc).get(LLM) != "READY", IDLE_GONE_WITHIN_S), "LLM still loaded"
    with MemoryWatch(idle_server) as watch:
        text, decision = grpc.route(QUESTION, SHORT)
    assert "Paris" in text
    assert decision["model"] == LLM and decision["use_case"] == "agent" and decision["language"] == "en"
    assert decision["load_ms"] > 0 and decision["classifier_ms"] > 0 and decision["total_ms"] >= decision["load_ms"]
    assert decision["candidates"][0]["model"] == LLM and "chose" in decision["reason"]
    assert LLM in watch.seen_ready  # Triton's index says it was loaded (it may be idle-unloaded by now)


def test_streaming_through_the_router(grpc: RouterClient, http: RouterClient) -> None:
    serving(grpc, LLM)
    pieces: list[str] = []
    text, decision = grpc.route(QUESTION, {**SHORT, "stream": True, "model": LLM}, on_piece=pieces.append)
    assert len(pieces) > 3 and "Paris" in "".join(pieces) and decision["model"] == LLM
    assert decision["load_ms"] == 0
    http_pieces: list[str] = []
    _, decision = http.route(QUESTION, {**SHORT, "stream": True}, on_piece=http_pieces.append)
    assert len(http_pieces) > 3 and decision["model"] == LLM


def test_budget_for_one_model_evicts_the_first(grpc: RouterClient, server: TritonServer) -> None:
    serving(grpc, LLM)
    with MemoryWatch(server) as watch:
        text, decision = grpc.route(QUESTION, {**SHORT, "model": LLM_BF16})
    assert decision["model"] == LLM_BF16 and text
    s = states(grpc)
    assert s[LLM_BF16] == "READY" and s[LLM] != "READY"
    assert s["query_classifier"] == "READY" and s["router"] == "READY"  # pinned
    assert watch.peak_mb <= ONE_LLM_BUDGET_MB, f"{sorted(watch.peak_models)} declare {watch.peak_mb} MB"


def test_concurrent_first_requests_cause_exactly_one_load(grpc: RouterClient, server: TritonServer) -> None:
    serving(grpc, LLM_BF16)  # evicts LLM
    assert states(grpc)[LLM] != "READY"
    before = loads_in_log(server, LLM)
    results: list[dict] = []
    go = threading.Barrier(4)

    def ask() -> None:
        client = RouterClient(server.grpc_url, "grpc")
        go.wait()
        results.append(client.route(QUESTION, {**SHORT, "model": LLM, "timeout_s": CALL_TIMEOUT_S})[1])

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(CALL_TIMEOUT_S * 2)
    assert [r["model"] for r in results] == [LLM] * 4, results
    # One request loaded it and the other three waited for that load (single flight): their decisions
    # say so. Triton's log alone cannot: it merges concurrent load calls for one model into one load.
    assert sorted(r["load_ms"] > 0 for r in results) == [False, False, False, True], [r["load_ms"] for r in results]
    assert loads_in_log(server, LLM) - before == 1


def test_request_in_flight_survives_a_competing_eviction(grpc: RouterClient, server: TritonServer) -> None:
    serving(grpc, LLM)
    pieces: list[str] = []
    first = threading.Event()
    out: dict = {}

    def long_stream() -> None:
        out["text"], out["decision"] = RouterClient(server.grpc_url, "grpc").route(
            "Write a long story about a dragon.",
            {"stream": True, "model": LLM, "timeout_s": CALL_TIMEOUT_S,
             "sampling_parameters": {"max_tokens": 80, "temperature": 0}},
            on_piece=lambda p: (pieces.append(p), first.set()))

    t = threading.Thread(target=long_stream)
    t.start()
    assert first.wait(CALL_TIMEOUT_S)
    # A request for the other model now cannot evict the busy one: it is skipped, not the stream.
    _, competing = grpc.route(QUESTION, {**SHORT, "model": LLM_BF16})
    t.join(CALL_TIMEOUT_S)
    assert out["decision"]["model"] == LLM and len(pieces) > 20
    assert competing["model"] == LLM
    assert competing["skipped"][0]["model"] == LLM_BF16 and "memory budget" in competing["skipped"][0]["why"]
    assert states(grpc)[LLM] == "READY"


def test_model_with_broken_weights_falls_back(broken_first_try: dict) -> None:
    decision = broken_first_try["decision"]
    assert decision["fallbacks"][0]["model"] == BROKEN and "load failed" in decision["fallbacks"][0]["error"]
    assert decision["model"] in (LLM, LLM_BF16) and "Paris" in broken_first_try["text"]
    assert broken_first_try["loads"] == 1


def test_failing_model_cools_down(grpc: RouterClient, server: TritonServer, broken_first_try: dict) -> None:
    before = loads_in_log(server, BROKEN)
    text, decision = grpc.route(QUESTION, {**SHORT, "model": BROKEN})
    assert decision["skipped"][0]["model"] == BROKEN and "cooling down" in decision["skipped"][0]["why"]
    assert decision["model"] in (LLM, LLM_BF16) and text
    assert loads_in_log(server, BROKEN) == before  # no second attempt while cooling


def test_no_fallback_allowed_gives_a_clear_error(grpc: RouterClient, broken_first_try: dict) -> None:
    with pytest.raises(InferenceServerException,
                       match="no model could serve use case 'agent' without fallback .tried broken_llm: cooling down"):
        grpc.route(QUESTION, {**SHORT, "model": BROKEN, "allow_fallback": False})


def test_bad_input_is_rejected_and_router_keeps_serving(grpc: RouterClient, http: RouterClient) -> None:
    with pytest.raises(InferenceServerException, match="options.use_case: 'chat' unknown"):
        grpc.route(QUESTION, {"use_case": "chat"})
    with pytest.raises(InferenceServerException, match="sampling_parameters.max_tokens: 0 must be >= 1"):
        grpc.route(QUESTION, {"sampling_parameters": {"max_tokens": 0}})
    with pytest.raises(InferenceServerException, match="text: empty"):
        http.route("  ", {})
    # This module's repository has no video_frames model: a clear error naming the step, not a crash.
    with pytest.raises(InferenceServerException, match="step model 'video_frames' failed: .*failed to load"):
        grpc.route("What happens in this clip?", {}, video=b"\x00\x00\x00\x18ftypmp42")
    assert "Paris" in grpc.route(QUESTION, SHORT)[0]


def test_metrics_count_decisions_loads_evictions_and_fallbacks(grpc: RouterClient, server: TritonServer,
                                                               broken_first_try: dict) -> None:
    serving(grpc, LLM)
    serving(grpc, LLM_BF16)  # evicts LLM
    time.sleep(1.0)  # the router ships its metric ops every 250 ms
    text = RouterClient(server.http_url).metrics(f"127.0.0.1:{server.metrics_port}")
    assert re.search(r'tmr_routing_decisions_total\{model="smollm2_135m_instruct",use_case="agent"\} [1-9]', text)
    assert re.search(r'tmr_fallbacks_total\{model="broken_llm",use_case="agent"\} 1\b', text)
    assert re.search(r'tmr_model_evictions_total\{model="smollm2_135m_instruct",reason="evicted"\} [1-9]', text)
    assert re.search(r'tmr_model_loads_total\{model="broken_llm",result="failed"\} 1\b', text)
    assert "tmr_model_load_duration_seconds_bucket" in text and "tmr_classifier_latency_seconds_count" in text


def test_idle_models_are_unloaded(idle_server: TritonServer) -> None:
    client = RouterClient(idle_server.grpc_url, "grpc")
    with MemoryWatch(idle_server) as watch:
        assert client.route(QUESTION, SHORT)[1]["model"] == LLM
        assert wait_for(lambda: states(client).get(LLM) != "READY", IDLE_GONE_WITHIN_S)
    assert LLM in watch.seen_ready
    s = states(client)
    assert s[LLM] != "READY" and s["router"] == "READY" and s["query_classifier"] == "READY"
