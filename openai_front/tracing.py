"""The front's traces: FastAPI's own HTTP server spans (one per request, named after its route, e.g.
`POST /v1/chat/completions`, a child of the client's W3C `traceparent` header) on the exporter of
model_router.tracing, so that the front's and the router's spans make one trace. The router call made
while a request's span is current carries it as options.traceparent (translate.router_call).
"""
from __future__ import annotations

import os
from typing import Mapping

from fastapi.telemetry import TelemetryConfig

from model_router import tracing

SERVICE = "tmr-front"
# Metrics and logs have their own homes (GET /metrics of Triton, the front's log): only traces here.
OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def telemetry(environ: Mapping[str, str] = os.environ) -> TelemetryConfig:
    """`FastAPI(telemetry=...)`: a span per request when OTEL_EXPORTER_OTLP_ENDPOINT is set, else off.
    No operation spans (dependencies, endpoint, serialization): the request's span stays the current
    one in handlers, where the router call and the tenant's name are added to it."""
    provider = tracing.setup(SERVICE, environ)
    if provider is None:
        return dict(OFF)  # type: ignore[return-value]
    return {**OFF, "tracing": True, "tracer_provider": provider, "operation_spans": False}
