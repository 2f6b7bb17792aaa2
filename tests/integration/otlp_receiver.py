"""An OTLP/HTTP trace receiver of a test's own: what a collector on port 4318 takes, on a free port.

It keeps the spans of every ExportTraceServiceRequest POSTed to /v1/traces in OTLP's JSON encoding
(what model_router.tracing sends) and answers anything else with 415, as a collector would.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass(frozen=True)
class Span:
    """One span as it arrived: ids in hex, its service, its attributes as plain values."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    service: str
    kind: int
    status: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)


def _value(v: dict[str, Any]) -> Any:
    if "intValue" in v:
        return int(v["intValue"])
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    return next(iter(v.values()), None)


def _attributes(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: _value(a["value"]) for a in items or []}


def spans_of(request: dict[str, Any]) -> list[Span]:
    """The spans of one JSON ExportTraceServiceRequest."""
    found = []
    for rs in request.get("resourceSpans", []):
        service = _attributes(rs.get("resource", {}).get("attributes")).get("service.name", "")
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                found.append(Span(s["name"], s["traceId"], s["spanId"], s.get("parentSpanId", ""), service,
                                  s.get("kind", 0), s.get("status", {}).get("code", 0), int(s["startTimeUnixNano"]),
                                  int(s["endTimeUnixNano"]), _attributes(s.get("attributes"))))
    return found


class OtlpReceiver:
    """Start it, point OTEL_EXPORTER_OTLP_ENDPOINT at `endpoint`, read `spans`; close() stops it."""

    def __init__(self) -> None:
        self._spans: list[Span] = []
        self._lock = threading.Lock()
        self.rejected = 0
        self.headers: list[dict[str, str]] = []  # of each export, names in lower case
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                ok = self.path == "/v1/traces" and self.headers.get("Content-Type", "").startswith("application/json")
                if ok:
                    receiver._keep(spans_of(json.loads(body)))
                else:
                    receiver.rejected += 1
                self.send_response(200 if ok else 415)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)
        self._thread.start()

    def _keep(self, spans: list[Span]) -> None:
        with self._lock:
            self._spans.extend(spans)

    @property
    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)

    def wait(self, done: Callable[[list[Span]], bool], timeout_s: float) -> list[Span]:
        """The spans once `done(spans)` holds, or as they are when `timeout_s` ran out."""
        deadline = time.monotonic() + timeout_s
        while not done(self.spans) and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.spans

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
