"""Self-healing, measured memory, single flight and no load thrashing, on real tritonservers.

A model whose stub is killed comes back by itself (a config-override load in the same tritonserver)
while requests fall back; one that dies again soon waits longer; the budget follows what models
really take; the loader never decides on a stale view; one client cannot churn the cache. Each is
seen from outside the router: stubs and their memory in /proc, Triton's repository index sampled by
the test, the router's load calls counted at a proxy in front of Triton, answers as a client gets them.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest

from client import RouterClient
from client.api import InferenceServerException
from launcher import TritonServer, free_port

from .conftest import kill_stub as kill_stub_of
from .conftest import start_server, stop_server
from .observe import (
    ControlProxy,
    MemoryWatch,
    _post,
    declared_mb,
    index_states,
    is_alive,
    pss_mb,
    server_processes,
    stub_pid,
    wait_for,
)
from .router_setup import LLM, LLM_BF16, ONE_LLM_BUDGET_MB, make_repository, start_router_server

pytestmark = pytest.mark.integration
QUESTION = "What is the capital of France?"
# The response cache off: each answer is the model's own, now (a replayed answer proves nothing about loads or health).
SHORT = {"sampling_parameters": {"max_tokens": 16, "temperature": 0}, "cache": "off"}
BACKOFF_S = 15.0
HEAL_WITHIN_S = 120.0  # a bound on the wait, far above a load (~5-15 s here); speed is bench_heal's
PINNED = ("query_classifier", "router", "tmr_metrics")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TritonServer]:
    """A fresh server per test: a death, its backoff and its count never carry into the next test."""
    srv = start_router_server(tmp_path, ["query_classifier", "router", LLM],
                              TMR_RECOVERY_BACKOFF_S=f"0,{BACKOFF_S:.0f}", TMR_FAILURE_THRESHOLD="3")
    yield srv
    stop_server(srv)


def live_stub(server: TritonServer, model: str) -> int | None:
    """The pid of `model`'s live stub, from /proc; None while it has none."""
    try:
        return stub_pid(server, model)
    except AssertionError:
        return None


def kill_stub(server: TritonServer, model: str) -> int:
    pid = stub_pid(server, model)
    kill_stub_of(server, pid)
    assert wait_for(lambda: not is_alive(pid), 10), f"stub {pid} still alive after SIGKILL"
    return pid


def ask(server: TritonServer, **options) -> tuple[str, dict]:
    return RouterClient(server.grpc_url, "grpc", timeout=HEAL_WITHIN_S).route(QUESTION, {**SHORT, **options})


def answers_by_name(server: TritonServer) -> bool:
    """The LLM answers when asked for by name, without fallback: as a client sees it, it is back."""
    try:
        return "Paris" in ask(server, model=LLM, allow_fallback=False)[0]
    except InferenceServerException:
        return False


def comes_back(server: TritonServer, dead: list[int], within_s: float) -> int:
    """Waits until the LLM has a new live stub (one not in `dead`) and answers by name; its pid."""
    assert wait_for(lambda: live_stub(server, LLM) not in (None, *dead), within_s, poll_s=0.5), \
        f"no new stub of {LLM} within {within_s} s of its death"
    # A stub is there from the start of the load; the load itself takes a minute on a busy 2-core machine.
    assert wait_for(lambda: answers_by_name(server), within_s, poll_s=1.0), f"{LLM} has a new stub but does not answer"
    return stub_pid(server, LLM)


def test_a_killed_stub_comes_back_by_itself_in_the_same_tritonserver(server: TritonServer) -> None:
    server_pid = server.proc.pid
    killed = kill_stub(server, LLM)
    fresh = comes_back(server, [killed], HEAL_WITHIN_S)
    text, decision = ask(server, model=LLM, allow_fallback=False)
    assert "Paris" in text and decision["model"] == LLM and not decision["fallbacks"]
    assert server.proc.poll() is None and server.proc.pid == server_pid  # no restart
    assert fresh != killed and is_alive(fresh)


def test_a_stub_killed_mid_stream_ends_the_stream_clearly_and_heals(server: TritonServer) -> None:
    first = threading.Event()
    out: dict = {}

    def long_stream() -> None:
        try:
            RouterClient(server.grpc_url, "grpc", timeout=HEAL_WITHIN_S).route(
                "Write a very long story about a dragon.",
                {"stream": True, "model": LLM, "cache": "off",
                 "sampling_parameters": {"max_tokens": 400, "ignore_eos": True}},
                on_piece=lambda piece: first.set())
        except InferenceServerException as exc:
            out["error"] = str(exc)

    t = threading.Thread(target=long_stream)
    t.start()
    assert first.wait(HEAL_WITHIN_S), "no first piece"
    killed = kill_stub(server, LLM)
    t.join(HEAL_WITHIN_S)  # well before the call's deadline (options.timeout_s, 120 s): the watcher saw it die
    assert not t.is_alive()
    assert f"model '{LLM}' failed mid-stream" in out["error"] and "its stub died" in out["error"], out
    comes_back(server, [killed], HEAL_WITHIN_S)


def test_dying_again_soon_backs_off_while_the_fallback_serves(server: TritonServer) -> None:
    first = kill_stub(server, LLM)
    comes_back(server, [first], HEAL_WITHIN_S)
    second = kill_stub(server, LLM)  # again, right after it came back
    # It waits out its backoff (no stub of it runs: a lower bound, which a slower machine only makes
    # safer), while the chain's next model serves.
    assert not wait_for(lambda: live_stub(server, LLM) is not None, BACKOFF_S / 2), \
        f"{LLM} was reloaded at once after dying again soon: no backoff"
    text, decision = ask(server)
    assert decision["model"] == LLM_BF16 and "Paris" in text
    assert any(s["model"] == LLM and "recovering" in s["why"] for s in decision["skipped"])
    comes_back(server, [first, second], BACKOFF_S + HEAL_WITHIN_S)


def test_the_budget_follows_measured_memory_when_a_declaration_is_too_low(tmp_path: Path) -> None:
    """Declared 50 MB, SmolLM2 really holds several hundred (its stub's PSS, read here from /proc): with a
    budget that would hold both LLMs by their declarations but not by what they take, a request for the
    other evicts it: Triton's index, sampled all along, never holds both."""
    def too_low(raw: dict) -> None:
        raw["models"][LLM]["memory_mb"] = 50

    budget = 460 + 50 + 650 + 100  # pinned + both LLMs as declared + a margin
    srv = start_router_server(tmp_path, ["query_classifier", "router"], too_low, TMR_MEMORY_BUDGET_MB=str(budget))
    try:
        assert "Paris" in ask(srv, model=LLM)[0]
        declared = declared_mb(srv)
        pinned = sum(declared[name] for name in PINNED)
        held = pss_mb(stub_pid(srv, LLM))
        assert pinned + held + declared[LLM_BF16] > budget, f"{LLM} holds {held:.0f} MB: both would fit anyway"
        with MemoryWatch(srv, poll_s=0.05) as watch:
            text, decision = ask(srv, model=LLM_BF16, allow_fallback=False)
        assert decision["model"] == LLM_BF16 and "Paris" in text
        assert not watch.held_together({LLM, LLM_BF16}), f"Triton held both LLMs at once: {held:.0f} MB + " \
            f"{declared[LLM_BF16]:.0f} MB + {pinned:.0f} MB pinned > {budget} MB"
        assert index_states(srv).get(LLM) != "READY" and live_stub(srv, LLM) is None  # evicted, its stub gone
    finally:
        stop_server(srv)


@pytest.mark.parametrize("attempt", [1, 2])
def test_a_load_under_way_elsewhere_counts_before_the_first_decision(tmp_path: Path, attempt: int) -> None:
    """The launcher (or anyone) loads SmolLM2 while the first request asks for its twin: under a budget
    for one LLM, both are never held."""
    srv = start_router_server(tmp_path, ["query_classifier", "router"], TMR_MEMORY_BUDGET_MB=str(ONE_LLM_BUDGET_MB),
                              TMR_MIN_RESIDENCY_S="60")
    try:
        with MemoryWatch(srv, poll_s=0.05) as watch:
            loading = threading.Thread(target=_post, args=(srv, f"models/{LLM}/load"))
            loading.start()
            assert wait_for(lambda: index_states(srv).get(LLM) in ("LOADING", "READY"), 30, 0.01)
            text, decision = ask(srv, model=LLM_BF16)
            loading.join()
        assert not watch.held_together({LLM, LLM_BF16}), "both LLMs were held at once"
        assert "Paris" in text and decision["model"] == LLM
        assert any(s["model"] == LLM_BF16 and "cannot be loaded now" in s["why"] for s in decision["skipped"])
    finally:
        stop_server(srv)


def test_one_load_for_concurrent_first_requests_and_no_churn(tmp_path: Path) -> None:
    """Load calls counted at a proxy between the router and Triton's HTTP API: four first requests at
    once make one load (single flight); a client alternating two models within the minimum residency
    makes none; an admin's switch makes exactly one."""
    port = free_port()
    repo, registry = make_repository(tmp_path)
    with ControlProxy(port) as proxy:
        srv = start_server(["query_classifier", "router"], http_port=port, model_repository=repo,
                           log_file=tmp_path / "tritonserver.log", admin_key="k",
                           env={"TMR_REGISTRY": str(registry), "TMR_CONTROL_URL": proxy.url,
                                "TMR_MIN_RESIDENCY_S": "60", "TMR_MEMORY_BUDGET_MB": str(ONE_LLM_BUDGET_MB)})
        try:
            go = threading.Barrier(4)

            def first_request(_: int) -> str:
                go.wait()
                return ask(srv, model=LLM)[1]["model"]

            with ThreadPoolExecutor(4) as pool:
                assert list(pool.map(first_request, range(4))) == [LLM] * 4
            assert proxy.count(LLM) == 1, f"{proxy.count(LLM)} load calls for one model wanted at once"

            served = [ask(srv, model=m)[1] for m in (LLM_BF16, LLM, LLM_BF16, LLM, LLM_BF16, LLM)]
            assert proxy.loads.count(LLM_BF16) == 0 and proxy.count(LLM) == 1, f"loads: {proxy.loads}"
            assert {d["model"] for d in served} == {LLM}  # what is loaded served them all ...
            assert "minimum residency" in served[-2]["reason"]  # ... and the decision says why
            forced = ask(srv, model=LLM_BF16, admin_key="k")[1]  # an admin may switch at once
            assert forced["model"] == LLM_BF16 and proxy.count(LLM_BF16) == 1, (proxy.loads, forced["reason"])
            with pytest.raises(InferenceServerException, match="options.admin_key: does not match"):
                ask(srv, model=LLM, admin_key="wrong")
        finally:
            stop_server(srv)


def test_a_dead_router_fails_the_liveness_check_that_triton_passes(tmp_path: Path) -> None:
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
        assert server_processes(srv)  # tritonserver itself lives on
    finally:
        # Triton waits out its exit timeout (6 s) for the dead instance and exits by itself: a stop
        # that had to kill it (rc -9 after 10 s) fails stop_server.
        stop_server(srv, timeout=10)
