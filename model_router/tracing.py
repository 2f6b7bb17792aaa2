"""OpenTelemetry traces of each request: the front's HTTP span, the router's span and its children
(classify, select, load, infer, each pipeline step), linked by W3C `traceparent`.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: then nothing
is created and every helper here returns at once. Spans go out over OTLP/HTTP in its JSON encoding
(`<endpoint>/v1/traces`, what every OpenTelemetry collector takes on port 4318): the protobuf
exporters need protobuf >= 5, which tritonclient 2.51 does not allow. No Triton imports: the front
and the router's stub both use it.
"""
from __future__ import annotations

import json
import logging
import os
import time
import urllib.parse
import urllib.request
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from .contract.tenancy import TRACEPARENT

log = logging.getLogger(__name__)
T = TypeVar("T")
ENDPOINT_ENV, TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
HEADERS_ENV, SERVICE_ENV = "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_SERVICE_NAME"
EXPORT_TIMEOUT_S = 10.0
PREFIX = "tmr."  # our attributes' namespace (the metrics' too): tmr.tenant, tmr.decision_id, tmr.model

_tracer: trace.Tracer | None = None  # None: tracing is off
_provider: TracerProvider | None = None


class OtlpJsonExporter(SpanExporter):
    """Spans as one OTLP/HTTP JSON ExportTraceServiceRequest per batch, POSTed to `url`."""

    def __init__(self, url: str, headers: Mapping[str, str] | None = None, timeout_s: float = EXPORT_TIMEOUT_S) -> None:
        self.url, self.headers, self.timeout_s = url, {"Content-Type": "application/json", **(headers or {})}, timeout_s

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        body = json.dumps(export_request(spans)).encode()
        try:
            with urllib.request.urlopen(urllib.request.Request(self.url, body, self.headers, method="POST"),
                                        timeout=self.timeout_s):
                return SpanExportResult.SUCCESS
        except OSError as exc:  # a collector that is down costs its spans, never a request
            log.warning("traces: %d span(s) not exported to %s: %s", len(spans), self.url, exc)
            return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def export_request(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """OTLP's JSON mapping: ids in hex, times as strings of nanoseconds, enums as numbers."""
    by_resource: dict[int, tuple[Any, list[dict[str, Any]]]] = {}
    for s in spans:
        by_resource.setdefault(id(s.resource), (s.resource, []))[1].append(_span(s))
    return {"resourceSpans": [{"resource": {"attributes": _attributes(r.attributes)},
                               "scopeSpans": [{"scope": {"name": __name__}, "spans": out}]}
                              for r, out in by_resource.values()]}


def _span(s: ReadableSpan) -> dict[str, Any]:
    ctx = s.get_span_context()
    out = {"traceId": f"{ctx.trace_id:032x}", "spanId": f"{ctx.span_id:016x}", "name": s.name,
           "kind": s.kind.value + 1,  # OTLP counts from SPAN_KIND_UNSPECIFIED = 0
           "startTimeUnixNano": str(s.start_time), "endTimeUnixNano": str(s.end_time),
           "attributes": _attributes(s.attributes), "status": {"code": s.status.status_code.value},
           "events": [{"name": e.name, "timeUnixNano": str(e.timestamp), "attributes": _attributes(e.attributes)}
                      for e in s.events]}
    if s.parent is not None:
        out["parentSpanId"] = f"{s.parent.span_id:016x}"
    if s.status.description:
        out["status"]["message"] = s.status.description
    return out


def _attributes(attributes: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in (attributes or {}).items()]


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, (list, tuple)):
        return {"arrayValue": {"values": [_value(x) for x in v]}}
    return {"stringValue": str(v)}


def traces_url(environ: Mapping[str, str]) -> str:
    """Where spans go: the traces endpoint as given, else the base endpoint + /v1/traces ("" : off)."""
    if environ.get(TRACES_ENDPOINT_ENV):
        return environ[TRACES_ENDPOINT_ENV]
    base = environ.get(ENDPOINT_ENV, "").strip()
    return f"{base.rstrip('/')}/v1/traces" if base else ""


def setup(service: str, environ: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """Start exporting this process's spans as `service` (OTEL_SERVICE_NAME wins); None, and nothing
    created, when no endpoint is set. The batch processor reads OTEL_BSP_* (OTEL_BSP_SCHEDULE_DELAY)."""
    global _tracer, _provider
    url = traces_url(environ)
    if not url:
        return None
    if _provider is None:
        # key=value pairs, comma-separated, values URL-encoded (a collector's auth header, say).
        pairs = (h.split("=", 1) for h in environ.get(HEADERS_ENV, "").split(",") if "=" in h)
        headers = {k.strip(): urllib.parse.unquote(v.strip()) for k, v in pairs}
        _provider = TracerProvider(resource=Resource.create({"service.name": environ.get(SERVICE_ENV) or service}))
        _provider.add_span_processor(BatchSpanProcessor(OtlpJsonExporter(url, headers)))
        _tracer = _provider.get_tracer(__name__)
    return _provider


def shutdown() -> None:
    """Send what is left and stop (tracing is off after)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def enabled() -> bool:
    return _tracer is not None


def parent(w3c: str | None) -> otel_context.Context | None:
    """The context of a W3C traceparent (the contract's TRACEPARENT); None (the current context) for
    none, and a new trace for a malformed one."""
    if not w3c:
        return None
    if not TRACEPARENT.fullmatch(w3c):
        return otel_context.Context()
    _, trace_id, span_id, flags = w3c.split("-")
    remote = SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(int(flags, 16)))
    return trace.set_span_in_context(NonRecordingSpan(remote))


def traceparent() -> str | None:
    """The current span's W3C traceparent (None when tracing is off or no span is current)."""
    if _tracer is None:
        return None
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def names(**attrs: Any) -> dict[str, Any]:
    """Span attributes under our prefix (tenant= -> tmr.tenant), None values left out."""
    return {PREFIX + k: v for k, v in attrs.items() if v is not None}


def annotate(span: trace.Span | None = None, **attrs: Any) -> None:
    """Set attributes (tenant=..., decision_id=...) on `span` or the current span."""
    if _tracer is not None:
        (span or trace.get_current_span()).set_attributes(names(**attrs))


def span(name: str, **attrs: Any) -> AbstractContextManager[Any]:
    """A child span of the current one, current while it runs; nothing at all when tracing is off."""
    if _tracer is None:
        return nullcontext()
    return _tracer.start_as_current_span(name, attributes=names(**attrs))


def start(name: str, of: str | trace.Span | None = None, kind: SpanKind = SpanKind.INTERNAL,
          start_ns: int | None = None, **attrs: Any) -> trace.Span:
    """A span that the caller ends: child of `of` (a span, or a W3C traceparent) if given, else of the
    current span."""
    ctx = trace.set_span_in_context(of) if isinstance(of, trace.Span) else parent(of)
    return (_tracer or trace.NoOpTracer()).start_span(name, ctx, kind, names(**attrs), start_time=start_ns)


def failed(s: trace.Span, exc: BaseException) -> None:
    """The span ends in error: the exception's type and message recorded."""
    s.record_exception(exc)
    s.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500]))


def traced_iter(s: trace.Span, items: Iterator[T], on_item: Callable[[trace.Span, T], None] = lambda s, i: None,
                ctx: otel_context.Context | None = None, current: bool = True) -> Iterator[T]:
    """`items`, each one made while `s` (or `ctx`) is current (when `current`), then `s` ended; an error
    ends it in error, and a consumer that stops early ends it as it stands (and closes `items`)."""
    ctx = ctx or trace.set_span_in_context(s)
    try:
        while True:
            token = otel_context.attach(ctx) if current else None
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                if token is not None:
                    otel_context.detach(token)
            on_item(s, item)
            yield item
    except Exception as exc:
        failed(s, exc)
        raise
    finally:
        getattr(items, "close", lambda: None)()  # what `items` holds (a model's call) is let go at once
        s.end()


def now_ns() -> int:
    return time.time_ns()
