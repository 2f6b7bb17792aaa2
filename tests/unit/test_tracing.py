"""Traces with plain functions for the classifier and the models, exported over OTLP/HTTP (JSON) to a
receiver of the test's own: the router's span and its children, the front's HTTP span, and nothing at
all without an endpoint."""
from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from model_router import tracing
from model_router.contract.router import RouterRequest
from model_router.contract.tensors import strings
from model_router.errors import ServingError, TargetError, never
from model_router.registry import load_registry
from model_router.routing.router import Router
from model_router.serving.health import HealthTracker
from model_router.serving.loader import ModelLoader
from model_router.triton import traces
from openai_front import tracing as front_tracing
from openai_front.translate import router_call
from tests.integration.otlp_receiver import OtlpReceiver, Span

from .test_loader import RecordingControl
from .test_router import classification

LLM, OCR = "smollm2_135m_instruct", "ocr_tesseract"
TRACE, CLIENT_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
CLIENT = f"00-{TRACE}-{CLIENT_SPAN}-01"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    got = OtlpReceiver()
    yield got
    tracing.shutdown()
    got.close()


@pytest.fixture
def traced(receiver: OtlpReceiver) -> OtlpReceiver:
    assert tracing.setup("tmr-test", {tracing.ENDPOINT_ENV: receiver.endpoint}) is not None
    return receiver


def router_of(broken: frozenset[str] = frozenset()) -> Router:
    """A router built as the router model builds it: its classifier, calls and loader wrapped."""
    reg = load_registry()
    managed = {m.name: (m.memory_mb, m.gpu_memory_mb, m.pinned) for m in reg.models.values() if "cpu" in m.profiles}

    def invoke(spec, inputs, stream, timeout_s, outputs, cancelled=never, gone=None):
        if spec.name in broken:
            raise TargetError(f"{spec.name}: boom")
        yield {"text_output": strings("SIGN" if spec.name == OCR else "An answer.")}

    return Router(reg, "cpu", traces.classify(lambda text, kinds: classification("agent")), traces.invoke(invoke),
                  traces.loader(ModelLoader(RecordingControl(load_s=0.01), managed, 6000)),
                  HealthTracker(threshold=1, cooldown_s=60))


def ask(router: Router, traceparent: str | None = CLIENT, **attachments: bytes) -> list:
    """The router's answers, as the router model asks for them (its options the request's own)."""
    options = {"sampling_parameters": {"max_tokens": 4}, "tenant": "acme", "traceparent": traceparent}
    request = RouterRequest.of("What does the sign say?", json.dumps(options), attachments)
    return list(traces.route(router.route(request), request.options))


def exported(receiver: OtlpReceiver, trace_id: str | None = None) -> dict[str, Span]:
    """The spans (of one trace), by name."""
    tracing.shutdown()  # sends what is left
    spans = [s for s in receiver.spans if trace_id in (None, s.trace_id)]
    assert len({s.name for s in spans}) == len(spans), [s.name for s in spans]
    return {s.name: s for s in spans}


def test_a_routed_request_is_one_trace_under_the_clients_span(traced: OtlpReceiver) -> None:
    answer = ask(router_of())[-1]
    spans = exported(traced)
    assert set(spans) == {"router", "classify", "select", f"load {LLM}", f"infer {LLM}"}
    assert {s.trace_id for s in spans.values()} == {TRACE} and {s.service for s in spans.values()} == {"tmr-test"}
    router = spans["router"]
    assert router.parent_id == CLIENT_SPAN and router.kind == 2  # SPAN_KIND_SERVER
    assert all(spans[n].parent_id == router.span_id for n in spans if n != "router")
    decision = answer.decision
    assert router.attributes == {"tmr.tenant": "acme", "tmr.decision_id": decision["id"], "tmr.model": LLM,
                                 "tmr.use_case": "agent", "tmr.cache": "skipped: cache off on this server"}
    assert spans["select"].attributes["tmr.decision_id"] == decision["id"]
    assert spans["classify"].attributes["tmr.use_case"] == "agent"
    # In the order they ran, within the router's span (select as the decision timed it, from the classifier's answer).
    classify, select, load, infer = (spans[n] for n in ("classify", "select", f"load {LLM}", f"infer {LLM}"))
    assert router.start_ns <= classify.start_ns <= classify.end_ns <= select.start_ns <= select.end_ns
    assert select.start_ns <= load.start_ns <= load.end_ns <= infer.start_ns <= infer.end_ns <= router.end_ns


def test_a_step_is_a_span_with_its_models_load_and_call_under_it(traced: OtlpReceiver) -> None:
    ask(router_of(), image=b"png")
    spans = exported(traced)
    step, router = spans["step read_image"], spans["router"]
    assert step.parent_id == router.span_id and step.attributes == {"tmr.step": "read_image", "tmr.model": OCR}
    assert spans[f"load {OCR}"].parent_id == step.span_id and spans[f"infer {OCR}"].parent_id == step.span_id
    assert spans[f"infer {LLM}"].parent_id == router.span_id


def test_a_model_loaded_already_leaves_no_load_span(traced: OtlpReceiver) -> None:
    router = router_of()
    ask(router)
    second = ask(router, f"00-{'1' * 32}-{'2' * 16}-01")[-1]
    assert set(exported(traced, "1" * 32)) == {"router", "classify", "select", f"infer {LLM}"}
    assert second.decision["model"] == LLM


def test_a_failed_request_and_its_failed_calls_end_in_error(traced: OtlpReceiver) -> None:
    chain = load_registry().chain("cpu", "agent")
    with pytest.raises(ServingError):
        ask(router_of(broken=frozenset(chain)))
    tracing.shutdown()
    spans = traced.spans
    router = next(s for s in spans if s.name == "router")
    assert router.status == 2 and "tmr.decision_id" not in router.attributes  # STATUS_CODE_ERROR
    failed = {s.name for s in spans if s.name.startswith("infer ") and s.status == 2}
    assert failed == {f"infer {m}" for m in chain}


def test_a_client_that_stops_reading_ends_the_spans(traced: OtlpReceiver) -> None:
    request = RouterRequest.of("capital of France?", json.dumps({"stream": True, "traceparent": CLIENT}), {})
    answers = traces.route(router_of().route(request), request.options)
    assert not next(answers).final  # the first piece, then the client is gone
    answers.close()
    spans = exported(traced)
    assert {"router", f"infer {LLM}"} <= set(spans) and spans["router"].trace_id == TRACE
    assert "tmr.tenant" not in spans["router"].attributes and "tmr.decision_id" not in spans["router"].attributes


def test_a_malformed_traceparent_starts_a_trace_of_its_own(traced: OtlpReceiver) -> None:
    # The contract refuses one from a client (options.traceparent); the router's span is safe anyway.
    request = RouterRequest.of("capital of France?", "{}", {})
    list(traces.route(router_of().route(request), SimpleNamespace(traceparent="00-not-a-trace", tenant=None)))
    router = exported(traced)["router"]
    assert router.parent_id == "" and re.fullmatch("[0-9a-f]{32}", router.trace_id) and router.trace_id != "0" * 32


def test_the_front_spans_each_request_under_the_clients_traceparent(receiver: OtlpReceiver) -> None:
    app = FastAPI(telemetry=front_tracing.telemetry({tracing.ENDPOINT_ENV: receiver.endpoint}))
    # What the front asks the router, built in the request's handler as every route builds it.
    app.get("/v1/probe")(lambda: {"traceparent": router_call({}, "hi").request.options.traceparent})
    with TestClient(app) as client:
        passed_on = client.get("/v1/probe", headers={"traceparent": CLIENT}).json()["traceparent"]
    front = exported(receiver)["GET /v1/probe"]
    assert front.trace_id == TRACE and front.parent_id == CLIENT_SPAN and front.service == "tmr-front"
    # What the front gives the router as options.traceparent: its request's span.
    assert passed_on[:-2] == f"00-{TRACE}-{front.span_id}-"


def test_without_an_endpoint_nothing_is_created_or_sent(receiver: OtlpReceiver, monkeypatch) -> None:
    made: list[str] = []
    monkeypatch.setattr(tracing.OtlpJsonExporter, "__init__", lambda self, *a, **k: made.append("exporter"))
    assert tracing.setup("tmr-test", {}) is None and tracing.setup("tmr-test", {tracing.ENDPOINT_ENV: ""}) is None
    assert not tracing.enabled() and made == []
    # The router is built with what it is given, untouched, and answers as ever.
    classify, invoke, loader = object(), object(), object()
    assert (traces.classify(classify), traces.invoke(invoke), traces.loader(loader)) == (classify, invoke, loader)
    answers = iter([])
    assert traces.route(answers, SimpleNamespace(traceparent=CLIENT, tenant="acme")) is answers
    assert ask(router_of())[-1].decision["model"] == LLM
    with tracing.span("step x") as s:
        assert s is None and tracing.traceparent() is None
    assert front_tracing.telemetry({}) == front_tracing.OFF
    assert router_call({}, "hi").request.options.traceparent is None
    tracing.shutdown()
    assert receiver.spans == [] and made == []


def test_spans_are_sent_as_otlp_json_to_the_traces_path(traced: OtlpReceiver) -> None:
    with tracing.span("outer", tenant="acme") as outer:
        tracing.annotate(decision_id="d1", n=3, ok=True, share=0.5, tags=["a", "b"])
        inner = tracing.start("inner")
        inner.end()
        here = tracing.traceparent()
    spans = exported(traced)
    assert spans["outer"].attributes == {"tmr.tenant": "acme", "tmr.decision_id": "d1", "tmr.n": 3, "tmr.ok": True,
                                         "tmr.share": 0.5, "tmr.tags": ["a", "b"]}
    assert spans["inner"].parent_id == spans["outer"].span_id
    assert here[:-2] == f"00-{spans['outer'].trace_id}-{outer.get_span_context().span_id:016x}-"
    assert traced.rejected == 0
    assert tracing.traces_url({tracing.ENDPOINT_ENV: "http://c:4318/"}) == "http://c:4318/v1/traces"
    assert tracing.traces_url({tracing.TRACES_ENDPOINT_ENV: "http://c/t", tracing.ENDPOINT_ENV: "x"}) == "http://c/t"


def test_the_exporter_sends_the_headers_it_is_given(receiver: OtlpReceiver) -> None:
    env = {tracing.ENDPOINT_ENV: receiver.endpoint + "/",
           tracing.HEADERS_ENV: "Authorization=Bearer%20t0ken, x-team = blue"}
    assert tracing.setup("tmr-test", env) is not None
    tracing.start("one").end()
    assert set(exported(receiver)) == {"one"}
    sent = receiver.headers[-1]
    assert sent["authorization"] == "Bearer t0ken" and sent["x-team"] == "blue"
    assert sent["content-type"] == "application/json"
