"""Traces on the real parts: a tritonserver and the OpenAI front, both exporting to an OTLP receiver of
the test's own (OTEL_EXPORTER_OTLP_ENDPOINT); one routed chat request with the client's `traceparent`
arrives as one trace: the front's span, the router's under it, and classify, select, the model's load
and its call under that, the decision's id on the router's span."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from launcher import FrontProcess, TritonServer, free_port
from model_router.tracing import ENDPOINT_ENV

from .conftest import LLM, start_server, stop_server
from .otlp_receiver import OtlpReceiver, Span
from .services import KEY, stop_front

pytestmark = pytest.mark.integration
TRACE, CLIENT_SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
FRONT_SPAN = "POST /v1/chat/completions"
ARRIVE_S = 60.0  # a hang bound: spans leave every 100 ms (OTEL_BSP_SCHEDULE_DELAY)


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OtlpReceiver, FrontProcess]]:
    tmp = tmp_path_factory.mktemp("tracing")
    receiver = OtlpReceiver()
    env = {ENDPOINT_ENV: receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    server: TritonServer | None = None
    front: FrontProcess | None = None
    try:
        # The LLM is not loaded: the router loads it for the first request, in a span of its own.
        server = start_server(["query_classifier", "router"], env=env)
        front = FrontProcess(server.grpc_url, port=free_port(), host="127.0.0.1", api_key=KEY,
                             log_file=tmp / "openai.log", env=env).start()
        yield receiver, front
    finally:
        try:
            if front is not None:
                stop_front(front)
        finally:
            if server is not None:
                stop_server(server)
            receiver.close()


def chat(front: FrontProcess, traceparent: str | None) -> dict:
    body = {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 8, "temperature": 0}
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}",
               **({"traceparent": traceparent} if traceparent else {})}
    request = urllib.request.Request(f"{front.url}/v1/chat/completions", json.dumps(body).encode(), headers)
    with urllib.request.urlopen(request, timeout=300) as resp:
        return json.loads(resp.read())


def trace_of(receiver: OtlpReceiver, decision_id: str) -> dict[str, Span]:
    """The spans of the trace whose router span carries `decision_id`, by name, once the front's arrived."""
    def found(spans: list[Span]) -> dict[str, Span]:
        router = next((s for s in spans if s.attributes.get("tmr.decision_id") == decision_id
                       and s.name == "router"), None)
        if router is None:
            return {}
        return {s.name: s for s in spans if s.trace_id == router.trace_id}

    spans = found(receiver.wait(lambda spans: FRONT_SPAN in found(spans), ARRIVE_S))
    assert FRONT_SPAN in spans and "router" in spans, \
        f"within {ARRIVE_S:.0f} s: {sorted((s.service, s.name) for s in receiver.spans)}"
    return spans


def test_a_routed_request_is_one_trace_from_the_client_through_the_front_and_the_router(traced) -> None:
    receiver, front = traced
    answer = chat(front, f"00-{TRACE}-{CLIENT_SPAN}-01")
    assert answer["routing"]["model"] == LLM
    spans = trace_of(receiver, answer["routing"]["id"])
    assert {"classify", "select", f"load {LLM}", f"infer {LLM}"} <= set(spans)
    assert {s.trace_id for s in spans.values()} == {TRACE}
    front_span, router = spans[FRONT_SPAN], spans["router"]
    assert front_span.parent_id == CLIENT_SPAN and front_span.service == "tmr-front"
    assert front_span.attributes["http.response.status_code"] == 200
    assert router.parent_id == front_span.span_id and router.service == "tmr-router"
    assert router.attributes["tmr.model"] == LLM and router.attributes["tmr.use_case"] == answer["routing"]["use_case"]
    for name in ("classify", "select", f"load {LLM}", f"infer {LLM}"):
        assert spans[name].parent_id == router.span_id and spans[name].service == "tmr-router", name
    assert spans[f"load {LLM}"].end_ns <= spans[f"infer {LLM}"].start_ns
    assert front_span.start_ns <= router.start_ns and router.end_ns <= front_span.end_ns


def test_without_a_client_traceparent_the_front_starts_the_trace(traced) -> None:
    receiver, front = traced
    answer = chat(front, None)
    spans = trace_of(receiver, answer["routing"]["id"])
    front_span, router = spans[FRONT_SPAN], spans["router"]
    assert front_span.parent_id == "" and router.parent_id == front_span.span_id
    assert front_span.trace_id not in (TRACE, "0" * 32)
    assert spans[f"infer {LLM}"].parent_id == router.span_id
