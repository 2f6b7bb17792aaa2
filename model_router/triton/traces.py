"""The router's spans, wrapped around what the Router is built with, so that the routing core knows
nothing of tracing: one `router` span per request (a child of options.traceparent, the tenant and the
decision's id, model and use case on it) with children `classify`, `select`, `load <model>` (when a
model is loaded), `infer <model>` and each pipeline step (`step <role>`, routing.pipeline).

With tracing off (model_router.tracing) every wrapper gives back what it was given.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from .. import tracing
from ..contract.classifier import Classification
from ..contract.request import RouteOptions
from ..contract.router import RouterAnswer
from ..errors import never
from ..registry import ModelSpec

_REQUEST = "tmr.router.request"  # context key: what the router span learns from its children


@dataclass
class _Request:
    classified_ns: int = 0  # when the classifier answered: selection starts there


def classify(fn: Callable[[str, tuple[str, ...]], Classification]) -> Callable[[str, tuple[str, ...]], Classification]:
    """The classifier's call in a `classify` span (a repeated query answered from the cache too)."""
    if not tracing.enabled():
        return fn

    @functools.wraps(fn)
    def traced(text: str, kinds: tuple[str, ...]) -> Classification:
        try:
            with tracing.span("classify") as s:
                c = fn(text, kinds)
                s.set_attributes(tracing.names(use_case=c.use_case, language=c.language, complexity=c.complexity))
            return c
        finally:  # a classifier that failed is followed by selection too (from the attachments)
            request = otel_context.get_value(_REQUEST)
            if isinstance(request, _Request):
                request.classified_ns = tracing.now_ns()
    return traced


def invoke(fn: Callable[..., Iterator[dict[str, Any]]]) -> Callable[..., Iterator[dict[str, Any]]]:
    """Each call to a model in an `infer <model>` span, from the call to its last response."""
    if not tracing.enabled():
        return fn

    def traced(model: ModelSpec, inputs: dict[str, Any], stream: bool, timeout_s: float, outputs: list[str],
               cancelled: Callable[[], bool] = never, gone: Callable[[], str] = lambda: "") -> Iterator[dict[str, Any]]:
        s = tracing.start(f"infer {model.name}", kind=SpanKind.CLIENT, model=model.name, stream=stream)
        calls = fn(model, inputs, stream, timeout_s, outputs, cancelled=cancelled, gone=gone)
        return tracing.traced_iter(s, iter(calls), current=False)
    return traced


class TracedLoader:
    """The loader, its `acquire` leaving a `load <model>` span when it loaded the model (or failed to)."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def acquire(self, name: str, timeout: float = 300.0, cancelled: Callable[[], bool] = never,
                force: bool = False) -> Any:
        started = tracing.now_ns()
        try:
            lease = self._loader.acquire(name, timeout, cancelled, force)
        except Exception as exc:
            s = tracing.start(f"load {name}", start_ns=started, model=name)
            tracing.failed(s, exc)
            s.end()
            raise
        if lease.load_s > 0:  # loaded for this request (a model already loaded leaves no span)
            tracing.start(f"load {name}", start_ns=started, model=name).end()
        return lease


def loader(real: Any) -> Any:
    return TracedLoader(real) if tracing.enabled() else real


def route(answers: Iterator[RouterAnswer], options: RouteOptions) -> Iterator[RouterAnswer]:
    """The router's answers to one request, made inside its `router` span."""
    if not tracing.enabled():
        return answers
    s = tracing.start("router", options.traceparent, SpanKind.SERVER, tenant=options.tenant)
    request = _Request()
    ctx = otel_context.set_value(_REQUEST, request, trace.set_span_in_context(s))
    return tracing.traced_iter(s, answers, functools.partial(_answered, request=request), ctx=ctx)


def _answered(s: trace.Span, answer: RouterAnswer, request: _Request) -> None:
    """The final answer's decision on the router span; `select` as the decision timed it."""
    if not answer.final:
        return
    d = answer.decision
    tracing.annotate(s, decision_id=d.get("id"), model=d.get("model"), use_case=d.get("use_case"),
                     cache=d.get("cache") or None)
    if request.classified_ns and "select_ms" in d:
        end = request.classified_ns + int(d["select_ms"] * 1e6)
        tracing.start("select", s, start_ns=request.classified_ns, decision_id=d.get("id"), model=d.get("model"),
                      decided_by=d.get("decided_by") or None).end(end_time=end)
