"""A client that gives up is not served to the end: the router stops, cancels its call to the LLM,
which frees the request's place in the batch, and gives its lease and admission place back.

Seen from outside the router: the LLM stub's CPU time (/proc) stops growing soon after the clients
leave, and the LLM backend's own counters on Triton's metrics port show the tokens it made and the
requests it dropped; admission, by whether the next clients are let in."""
from __future__ import annotations

import json
import queue
import threading
import time
from typing import Callable

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from client import RouterClient
from launcher import TritonServer

from .conftest import LLM, start_server, stop_server
from .observe import goes_quiet, llm_requests, llm_tokens, metric, settled, stub_pid, wait_for

pytestmark = pytest.mark.integration
LONG = {"max_tokens": 400, "temperature": 0, "ignore_eos": True}
STORY = "Write a very long story about a dragon."


def _inputs(text: str, options: dict) -> list:
    out = []
    for name, value in (("text", text), ("options", json.dumps(options))):
        t = grpcclient.InferInput(name, [1], "BYTES")
        t.set_data_from_numpy(np.array([value.encode()], dtype=np.object_))
        out.append(t)
    return out


def abandon(url: str, options: dict, after_pieces: int = 1, after_s: float | None = None,
            leave_when: Callable[[], bool] | None = None) -> tuple[int, str]:
    """Send one router request on its own gRPC stream and cancel it after `after_pieces` pieces (or
    `after_s` seconds, or as soon as `leave_when()` holds); returns (pieces received, error seen
    before the cancel, if any)."""
    results: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(url)
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    pieces, error, finished = 0, "", False
    timed = after_s is not None or leave_when is not None
    try:
        client.async_stream_infer("router", _inputs(STORY, options), enable_empty_final_response=True)
        deadline = time.monotonic() + (after_s if after_s is not None else 300)
        while pieces < after_pieces or timed:
            if leave_when is not None and leave_when():
                break
            try:
                result, err = results.get(timeout=min(max(deadline - time.monotonic(), 0.01), 0.2))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    break  # after_s passed
                continue
            if err is not None:
                error, finished = str(err), True
                break
            text = result.as_numpy("text_output")
            pieces += int(text is not None and any(v for v in text.reshape(-1)))
            if result.get_response().parameters["triton_final_response"].bool_param:
                finished = True
                break
    finally:
        # Only an unfinished answer is cancelled: a cancellation after the last response leaves Triton
        # 24.10 holding the router (client.api.RouterClient.stream_responses).
        client.stop_stream(cancel_requests=not finished)
        client.close()
    return pieces, error


def baselines(server: TritonServer) -> tuple[float, float]:
    """(requests the LLM dropped, tokens it made) once its stub is idle and its counts have shipped."""
    goes_quiet(stub_pid(server, LLM))
    return (settled(lambda: llm_requests(server, "cancelled", absent=0.0)),
            settled(lambda: llm_tokens(server, absent=0.0)))


def test_abandoned_streams_stop_the_llm_and_the_next_request_is_served(router) -> None:
    pid = stub_pid(router, LLM)
    llm_before, tokens_before = baselines(router)
    options = {"stream": True, "use_case": "agent", "sampling_parameters": LONG}
    threads = [threading.Thread(target=abandon, args=(router.grpc_url, options)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    goes_quiet(pid)
    spent = llm_tokens(router) - tokens_before
    assert spent < 3 * 100, f"{spent} tokens generated for 3 answers of 400 abandoned after their first piece"
    assert wait_for(lambda: llm_requests(router, "cancelled", absent=0.0) >= llm_before + 3, 30), \
        "the LLM finished the abandoned requests"
    text, decision = RouterClient(router.grpc_url, "grpc").route(
        "What is the capital of France?", {"sampling_parameters": {"max_tokens": 16, "temperature": 0}, "cache": "off"})
    assert "Paris" in text and decision["model"] == LLM and not decision["fallbacks"]


def test_a_cancelled_request_that_was_not_streamed_stops_too(router) -> None:
    pid = stub_pid(router, LLM)
    llm_before, tokens_before = baselines(router)
    # The client leaves once the LLM has begun its answer (its backend's token count moved).
    pieces, error = abandon(router.grpc_url, {"use_case": "agent", "sampling_parameters": LONG}, after_s=300,
                            leave_when=lambda: llm_tokens(router, absent=0.0) > tokens_before)
    assert pieces == 0 and not error  # nothing came: the answer was still being made
    goes_quiet(pid)
    spent = llm_tokens(router) - tokens_before
    assert spent < 400, f"{spent} tokens generated for an answer of 400 whose client left at its start"
    assert wait_for(lambda: llm_requests(router, "cancelled", absent=0.0) >= llm_before + 1, 30), \
        "the LLM finished a request whose client left"


def test_requests_abandoned_while_waiting_for_a_worker_give_their_places_back(tmp_path) -> None:
    """One worker and two waiting places: three clients that leave while waiting free them at once,
    so that new requests are admitted while the first still runs."""
    srv = start_server(["query_classifier", "router", LLM], env={"TMR_WORKERS": "1", "TMR_MAX_QUEUED": "3"})
    # The wait below is on the router's own count (only a sync point); the proof is the clients' view:
    # new requests let in while the first still runs.
    try:
        busy = threading.Thread(target=abandon, args=(srv.grpc_url, {"use_case": "agent", "sampling_parameters":
                                                                      {"max_tokens": 300, "temperature": 0,
                                                                       "ignore_eos": True}}, 0, 40.0))
        busy.start()
        time.sleep(2.0)  # the worker is taken
        leavers = [threading.Thread(target=abandon, args=(srv.grpc_url, {"use_case": "agent"}, 0, 0.5))
                   for _ in range(3)]
        for t in leavers:
            t.start()
        for t in leavers:
            t.join()
        # absent until the first cancellation is counted (the router ships its metrics every 250 ms)
        assert wait_for(lambda: metric(srv, "tmr_cancelled_total", use_case="unknown", absent=0.0) >= 3, 30), \
            "abandoned requests kept their places in the queue"
        assert busy.is_alive()  # the first request still runs: the places came back while it did
        admitted = [abandon(srv.grpc_url, {"use_case": "agent"}, 0, 0.5) for _ in range(3)]
        assert all("overloaded" not in error for _, error in admitted), admitted
        busy.join()
    finally:
        stop_server(srv)
