"""Faults on a real tritonserver: a target's stub killed mid-request, the memory budget filled,
a model whose load fails. Each ends in a fallback or a clear error; the router stays up, the
budget holds and no process or shared memory outlives the server, each seen from outside the
code under test (Triton's repository index, /proc, /dev/shm: tests/integration/observe.py)."""
from __future__ import annotations

import math
import threading
import time
from typing import Iterator

import pytest

from client import RouterClient
from client.api import InferenceServerException
from launcher import TritonServer

from .conftest import kill_stub, stop_server
from .observe import MemoryWatch, is_alive, model_states, stub_pid, wait_for
from .router_setup import BROKEN, LLM, LLM_BF16, ONE_LLM_BUDGET_MB, start_router_server

pytestmark = pytest.mark.integration
QUESTION = "What is the capital of France?"
# The response cache off: each answer is the model's own, now (a replayed answer proves nothing about loads or health).
SHORT = {"sampling_parameters": {"max_tokens": 16, "temperature": 0}, "cache": "off"}
COOLDOWN_S = 2.0
# Long enough that the answer is still streaming when the stub is killed after its first piece.
STORY = ("Write a very long story about a dragon.", {"max_tokens": 96, "temperature": 0})


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[TritonServer]:
    srv = start_router_server(tmp_path_factory.mktemp("faults"), ["query_classifier", "router"],
                              TMR_MEMORY_BUDGET_MB=str(ONE_LLM_BUDGET_MB), TMR_FAILURE_THRESHOLD="1",
                              TMR_COOLDOWN_S=str(COOLDOWN_S), TMR_IDLE_UNLOAD_S="0")
    yield srv
    stop_server(srv)


@pytest.fixture
def roomy_server(tmp_path) -> Iterator[TritonServer]:
    """Both LLMs fit (the fallback needs no eviction). A dead model is reloaded RELOAD_AFTER_S after it
    is found dead, so that the test sees it both out and back."""
    srv = start_router_server(tmp_path, ["query_classifier", "router", LLM], TMR_FAILURE_THRESHOLD="2",
                              TMR_COOLDOWN_S="300", TMR_RECOVERY_BACKOFF_S=str(RELOAD_AFTER_S))
    yield srv
    stop_server(srv)


RELOAD_AFTER_S = 20


def stream_story(server: TritonServer, timeout_s: float, pieces: list[str], first: threading.Event) -> dict:
    """The long story through the router, by name and without fallback; {"text"/"error": ...}."""
    options = {"stream": True, "model": LLM, "allow_fallback": False, "timeout_s": timeout_s,
               "sampling_parameters": STORY[1], "cache": "off"}
    try:
        text, decision = RouterClient(server.grpc_url, "grpc", timeout=timeout_s + 60).route(
            STORY[0], options, on_piece=lambda p: (pieces.append(p), first.set()))
        return {"text": text, "decision": decision}
    except InferenceServerException as exc:
        return {"error": str(exc)}


def test_killing_a_target_stub_mid_request_is_a_clear_error_then_it_heals(roomy_server: TritonServer) -> None:
    server = roomy_server
    grpc = RouterClient(server.grpc_url, "grpc")
    # The same request, undisturbed: how long the answer takes here and now. The deadline is set
    # well above it, so that only the kill can make the request fail.
    started = time.monotonic()
    normal = stream_story(server, 600, [], threading.Event())
    normal_s = time.monotonic() - started
    assert "text" in normal, normal
    deadline_s = math.ceil(2 * normal_s) + 5

    pieces: list[str] = []
    first = threading.Event()
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(stream_story(server, deadline_s, pieces, first)))
    t.start()
    assert first.wait(deadline_s), "no first piece"
    pid = stub_pid(server, LLM)
    kill_stub(server, pid)
    t.join(deadline_s + 60)
    assert not t.is_alive(), "the killed request hung past its deadline"
    assert wait_for(lambda: not is_alive(pid), 10), f"stub {pid} of {LLM} still alive after SIGKILL"
    # A clear error naming the model, as soon as the router's watcher finds the stub gone (Triton never
    # ends a dead stub's stream; the call is not left to run into its deadline).
    assert "error" in out, f"no error: the request was answered ({len(pieces)} pieces)"
    assert f"model {LLM!r} failed mid-stream" in out["error"], out
    assert f"{LLM}: recovering: its stub died" in out["error"] and "no complete answer" not in out["error"], out
    assert "".join(pieces) != normal["text"], "the answer was complete: the stub died after it"

    # While it is out, asked for by name it is a clear error, and the router serves on with the chain's next
    # model, saying why the dead one was skipped.
    with pytest.raises(InferenceServerException, match=rf"tried {LLM}: recovering: its stub died"):
        grpc.route(QUESTION, {**SHORT, "model": LLM, "allow_fallback": False})
    text, decision = grpc.route(QUESTION, SHORT)
    assert "Paris" in text and decision["model"] == LLM_BF16, decision
    assert decision["skipped"][0]["model"] == LLM and "recovering" in decision["skipped"][0]["why"], decision

    # Then it is reloaded in the same tritonserver (a fresh stub), and serves again by name.
    assert wait_for(lambda: RouterClient(server.http_url).deep_health()["models"][LLM]["healthy"],
                    RELOAD_AFTER_S + deadline_s + 60)
    text, decision = grpc.route(QUESTION, {**SHORT, "model": LLM, "allow_fallback": False})
    assert "Paris" in text and decision["model"] == LLM
    assert stub_pid(server, LLM) != pid and server.proc.poll() is None


def test_filling_the_budget_evicts_and_never_exceeds_it(grpc: RouterClient, server: TritonServer) -> None:
    with MemoryWatch(server) as watch:
        for model in (LLM_BF16, LLM, LLM_BF16, LLM):
            text, decision = grpc.route(QUESTION, {**SHORT, "model": model})
            assert decision["model"] == model and "Paris" in text
            states = model_states(grpc)
            assert states[model] == "READY" and states[{LLM: LLM_BF16, LLM_BF16: LLM}[model]] != "READY", states
    # Triton's index, sampled all along: each LLM was loaded in turn, never both, within the budget.
    assert {LLM, LLM_BF16} <= watch.seen_ready and watch.samples > 10
    assert not watch.held_together({LLM, LLM_BF16}), "Triton held both LLMs at once"
    assert watch.peak_mb <= ONE_LLM_BUDGET_MB, f"{sorted(watch.peak_models)} declare {watch.peak_mb} MB"


def test_a_model_whose_load_fails_falls_back_or_is_a_clear_error(grpc: RouterClient, server: TritonServer) -> None:
    with MemoryWatch(server) as watch:
        text, decision = grpc.route(QUESTION, {**SHORT, "model": BROKEN})
        assert decision["fallbacks"][0]["model"] == BROKEN and "load failed" in decision["fallbacks"][0]["error"]
        assert "Paris" in text and decision["model"] in (LLM, LLM_BF16)
        # Asked for by name while it cools down: refused, naming the cool-down. Past it, tried again,
        # and without fallback its own failure is the answer.
        errors: list[str] = []

        def refused_past_cooldown() -> bool:
            with pytest.raises(InferenceServerException) as err:
                grpc.route(QUESTION, {**SHORT, "model": BROKEN, "allow_fallback": False})
            errors.append(str(err.value))
            return "cooling down" not in errors[-1]

        assert wait_for(refused_past_cooldown, COOLDOWN_S * 10, poll_s=COOLDOWN_S / 4), errors[-1]
        assert f"{BROKEN}: model {BROKEN!r}: load failed" in errors[-1], errors[-1]
        assert "Paris" in grpc.route(QUESTION, SHORT).text
    assert model_states(grpc)[BROKEN] != "READY"
    assert watch.peak_mb <= ONE_LLM_BUDGET_MB, f"{sorted(watch.peak_models)} declare {watch.peak_mb} MB"
