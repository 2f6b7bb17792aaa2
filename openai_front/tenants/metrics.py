"""The front's own metrics (Prometheus, GET /metrics): each tenant's requests, tokens, cache hits and
refusals, and whether limits are counted per replica because Redis is away. Labels stay bounded: a
key's name (keys are made by the operator), a model the registry names (else "other")."""
from __future__ import annotations

from typing import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

OTHER = "other"


class FrontMetrics:
    def __init__(self, models: Iterable[str]) -> None:
        self.registry = CollectorRegistry()
        self._models = frozenset(models)
        self.requests = Counter("tmr_front_requests", "Answers given to a tenant's key, by outcome (ok, cached, error)",
                                ["key", "model", "outcome"], registry=self.registry)
        self.tokens = Counter("tmr_front_tokens", "Tokens charged to a tenant's key (the engine's counts), by kind",
                              ["key", "model", "kind"], registry=self.registry)
        self.refused = Counter("tmr_front_refusals", "Requests a tenant's key was refused, by the limit at fault (rpm, tpm, budget_tokens)",
                               ["key", "field"], registry=self.registry)
        self.degraded = Gauge("tmr_front_limits_degraded",
                              "1 while the shared counters (Redis) are away and each replica counts alone",
                              registry=self.registry)

    def answered(self, key: str, model: str | None, prompt: int, completion: int, cached: bool, error: bool) -> None:
        model = model if model in self._models else OTHER
        self.requests.labels(key, model, "error" if error else "cached" if cached else "ok").inc()
        self.tokens.labels(key, model, "prompt").inc(prompt)
        self.tokens.labels(key, model, "completion").inc(completion)

    def exposition(self, degraded: bool) -> bytes:
        self.degraded.set(1 if degraded else 0)
        return generate_latest(self.registry)
