"""Self-healing, measured memory and no load thrashing, on real tritonservers.

A model whose stub is killed comes back by itself (a config-override load in the same tritonserver)
while requests fall back; one that dies again soon waits longer; the budget follows what models
really take; the loader never decides on a stale view; one client cannot churn the cache.
"""
from __future__ import annotations

import os
import signal
import threading
from typing import Iterator

import pytest

from client import RouterClient
from client.api import InferenceServerException
from launcher import TritonServer
from model_router.serving.stubs import stub_pids

from .conftest import metric, stop_server
from .observe import MemoryWatch, _post, index_states, wait_for
from .router_setup import LLM, LLM_BF16, ONE_LLM_BUDGET_MB, start_router_server

pytestmark = pytest.mark.integration
QUESTION = "What is the capital of France?"
SHORT = {"sampling_parameters": {"max_tokens": 16, "temperature": 0}}
BACKOFF_S = 15.0
HEAL_WITHIN_S = 120.0  # a bound on the wait, far above a load (~5-15 s here); speed is bench_heal's


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[TritonServer]:
    srv = start_router_server(tmp_path_factory.mktemp("heal"), ["query_classifier", "router", LLM],
                              TMR_RECOVERY_BACKOFF_S=f"0,{BACKOFF_S:.0f}", TMR_FAILURE_THRESHOLD="3")
    yield srv
    stop_server(srv)


def kill_stub(server: TritonServer, model: str) -> int:
    pid = stub_pids(server.proc.pid)[model][0]
    os.kill(pid, signal.SIGKILL)
    return pid


def healthy(server: TritonServer, model: str) -> bool:
    return RouterClient(server.http_url).deep_health()["models"][model]["healthy"]


def recoveries(server: TritonServer, result: str = "ok") -> float:
    return metric(server, "tmr_model_recoveries_total", model=LLM, result=result)


def ask(server: TritonServer, **options) -> tuple[str, dict]:
    return RouterClient(server.grpc_url, "grpc", timeout=HEAL_WITHIN_S).route(QUESTION, {**SHORT, **options})


def test_a_killed_stub_comes_back_by_itself_in_the_same_tritonserver(server: TritonServer) -> None:
    before, server_pid = recoveries(server), server.proc.pid
    killed = kill_stub(server, LLM)
    assert wait_for(lambda: recoveries(server) >= before + 1 and healthy(server, LLM), HEAL_WITHIN_S), \
        RouterClient(server.http_url).deep_health()["models"][LLM]
    text, decision = ask(server, model=LLM, allow_fallback=False)
    assert "Paris" in text and decision["model"] == LLM and not decision["fallbacks"]
    assert server.proc.poll() is None and server.proc.pid == server_pid  # no restart
    assert stub_pids(server.proc.pid)[LLM] != [killed]  # a fresh instance


def test_a_stub_killed_mid_stream_ends_the_stream_clearly_and_heals(server: TritonServer) -> None:
    before = recoveries(server)
    first = threading.Event()
    out: dict = {}

    def long_stream() -> None:
        try:
            RouterClient(server.grpc_url, "grpc", timeout=HEAL_WITHIN_S).route(
                "Write a very long story about a dragon.",
                {"stream": True, "model": LLM, "sampling_parameters": {"max_tokens": 400, "ignore_eos": True}},
                on_piece=lambda piece: first.set())
        except InferenceServerException as exc:
            out["error"] = str(exc)

    t = threading.Thread(target=long_stream)
    t.start()
    assert first.wait(HEAL_WITHIN_S), "no first piece"
    kill_stub(server, LLM)
    t.join(HEAL_WITHIN_S)  # well before the call's deadline (options.timeout_s, 120 s): the watcher saw it die
    assert not t.is_alive()
    assert out["error"].startswith(f"model '{LLM}' failed mid-stream") and "its stub died" in out["error"]
    assert wait_for(lambda: recoveries(server) >= before + 1 and healthy(server, LLM), HEAL_WITHIN_S)
    assert "Paris" in ask(server, model=LLM, allow_fallback=False)[0]


def test_dying_again_soon_backs_off_while_the_fallback_serves(server: TritonServer) -> None:
    before = recoveries(server)
    kill_stub(server, LLM)
    assert wait_for(lambda: recoveries(server) >= before + 1 and healthy(server, LLM), HEAL_WITHIN_S)
    kill_stub(server, LLM)  # again, right after it came back
    def backing_off() -> bool:
        return "next reload in" in RouterClient(server.http_url).deep_health()["models"][LLM]["recovering"]

    assert wait_for(backing_off, BACKOFF_S)
    report = RouterClient(server.http_url).deep_health()
    text, decision = ask(server)
    assert decision["model"] == LLM_BF16 and "Paris" in text
    assert any(s["model"] == LLM and "recovering" in s["why"] for s in decision["skipped"])
    assert report["recoveries"][LLM]["deaths"] >= 2
    assert wait_for(lambda: recoveries(server) >= before + 2 and healthy(server, LLM), BACKOFF_S + HEAL_WITHIN_S)
    _post(server, f"models/{LLM_BF16}/unload")


def test_the_budget_follows_measured_memory_when_a_declaration_is_too_low(tmp_path) -> None:
    """Declared 50 MB, SmolLM2 really holds several hundred: with a budget that would hold both LLMs by
    their declarations but not by what they take, a request for the other evicts it."""
    def too_low(raw: dict) -> None:
        raw["models"][LLM]["memory_mb"] = 50

    budget = 460 + 50 + 650 + 100  # pinned + both LLMs as declared + a margin
    srv = start_router_server(tmp_path, ["query_classifier", "router"], too_low, TMR_MEMORY_BUDGET_MB=str(budget))
    try:
        assert "Paris" in ask(srv, model=LLM)[0]
        measured = metric(srv, "tmr_model_memory_mb", model=LLM, kind="measured")
        assert measured > 200, measured  # what /proc says it holds, not its 50
        with MemoryWatch(srv) as watch:
            text, decision = ask(srv, model=LLM_BF16, allow_fallback=False)
        assert decision["model"] == LLM_BF16
        assert not {LLM, LLM_BF16} <= watch.seen_ready or index_states(srv).get(LLM) != "READY"
        assert index_states(srv).get(LLM) != "READY"  # evicted: by its measured size they do not fit
        report = RouterClient(srv.http_url).deep_health()
        assert report["models"][LLM]["measured_mb"] == pytest.approx(measured, rel=0.01)
        assert report["memory"]["used_mb"] <= budget
    finally:
        stop_server(srv)


@pytest.mark.parametrize("attempt", [1, 2])
def test_a_load_under_way_elsewhere_counts_before_the_first_decision(tmp_path, attempt: int) -> None:
    """The launcher (or anyone) loads SmolLM2 while the first request asks for its twin: under a budget
    for one LLM, both are never loaded."""
    srv = start_router_server(tmp_path, ["query_classifier", "router"], TMR_MEMORY_BUDGET_MB=str(ONE_LLM_BUDGET_MB),
                              TMR_MIN_RESIDENCY_S="60")
    try:
        with MemoryWatch(srv, poll_s=0.05) as watch:
            loading = threading.Thread(target=_post, args=(srv, f"models/{LLM}/load"))
            loading.start()
            assert wait_for(lambda: index_states(srv).get(LLM) in ("LOADING", "READY"), 30, 0.01)
            text, decision = ask(srv, model=LLM_BF16)
            loading.join()
        assert not {LLM, LLM_BF16} <= watch.seen_ready, "both LLMs were loaded at once"
        assert "Paris" in text and decision["model"] == LLM
        assert any(s["model"] == LLM_BF16 and "cannot be loaded now" in s["why"] for s in decision["skipped"])
    finally:
        stop_server(srv)


def test_a_client_alternating_two_models_cannot_churn_the_cache(tmp_path) -> None:
    residency = 20
    srv = start_router_server(tmp_path, ["query_classifier", "router", LLM], TMR_MIN_RESIDENCY_S=str(residency),
                              TMR_MEMORY_BUDGET_MB=str(ONE_LLM_BUDGET_MB), TMR_ADMIN_KEY="k")
    try:
        loads = lambda: metric(srv, "tmr_model_loads_total", result="ok")  # noqa: E731
        before = loads()
        served = [ask(srv, model=m)[1] for m in (LLM_BF16, LLM, LLM_BF16, LLM, LLM_BF16, LLM)]
        assert loads() == before, "a switch within the minimum residency"
        assert {d["model"] for d in served} == {LLM}  # what is loaded served them all ...
        # ... and the decision says why the preferred one was passed over (the first may still see the
        # launcher's load under way; the rest, the minimum residency of the model it would evict)
        assert all(f"options.model {LLM_BF16} passed over: cannot be loaded now" in d["reason"] for d in served[::2])
        assert "minimum residency" in served[-2]["reason"]
        forced = ask(srv, model=LLM_BF16, admin_key="k")[1]  # an admin may switch at once
        assert forced["model"] == LLM_BF16 and loads() == before + 1
        with pytest.raises(InferenceServerException, match="options.admin_key: does not match"):
            ask(srv, model=LLM, admin_key="wrong")
    finally:
        stop_server(srv)


def test_a_dead_router_fails_the_liveness_check_that_triton_passes(tmp_path) -> None:
    """Nothing inside Triton heals the router's own stub: the probes must see it, for a restart."""
    import importlib.util

    from model_router import REPO_ROOT

    spec = importlib.util.spec_from_file_location("healthcheck", REPO_ROOT / "deploy" / "healthcheck.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    srv = start_router_server(tmp_path, ["query_classifier", "router"])
    base = f"http://{srv.http_url}"
    try:
        assert probe.check(["/v2/health/live", "router-live"], base, 5) is None
        kill_stub(srv, "router")
        assert wait_for(lambda: probe.check(["router-live"], base, 5) is not None, 30)
        assert probe.check(["/v2/health/live", "/v2/models/router/ready"], base, 5) is None, \
            "Triton noticed the dead router: the liveness probe could ask it alone"
        assert probe.check(["router-deep"], base, 5).startswith("router-deep: ")
    finally:
        # Triton waits out its exit timeout (6 s) for the dead instance and exits by itself: a stop
        # that had to kill it (rc -9 after 10 s) fails stop_server.
        stop_server(srv, timeout=10)
