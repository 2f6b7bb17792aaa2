"""All of our Prometheus metrics (the router's and our backend's generation), as pb_utils.MetricFamily,
on Triton's metrics port.

Names follow <namespace>_<what>_<unit>[_total]; every family carries a `model` label where one
model is concerned. The pb_utils module is passed in, so that this package never imports it.

Every metric call is made by one thread, from a queue: in Triton 24.10, pb_utils metric calls
from several threads at once crash tritonserver (std::bad_alloc or boost lock_exception in the
Python backend; 2 of 3 fresh servers under 24 concurrent router requests, none of 4 with metrics
off), and each call is a round trip to the server that a request should not wait for.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable

LOAD_BUCKETS = [0.5, 1, 2, 4, 8, 16, 32, 64, 128]
BATCH_BUCKETS = [1, 2, 4, 8, 16, 32]
CLASSIFIER_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25]


class _MetricsThread:
    """Applies metric calls on one thread, in order."""

    def __init__(self) -> None:
        self._metrics: dict[tuple, Any] = {}
        self._ops: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._apply, name="metrics", daemon=True)
        self._thread.start()

    def _apply(self) -> None:
        while (op := self._ops.get()) is not None:
            try:
                op()
            except Exception:  # a metric must never take a request down
                pass

    def close(self) -> None:
        self._ops.put(None)
        self._thread.join(timeout=5)

    def _get(self, family: Any, buckets: list[float] | None = None, **labels: str) -> Any:
        """The metric for these labels (on the metrics thread only)."""
        key = (id(family), tuple(sorted(labels.items())))
        if key not in self._metrics:
            self._metrics[key] = (family.Metric(labels=labels, buckets=buckets) if buckets
                                  else family.Metric(labels=labels))
        return self._metrics[key]

    def _add(self, family: Any, value: float = 1, **labels: str) -> None:
        self._ops.put(lambda: self._get(family, **labels).increment(value))

    def _observe(self, family: Any, buckets: list[float], value: float, **labels: str) -> None:
        self._ops.put(lambda: self._get(family, buckets, **labels).observe(value))

    def _set(self, family: Any, value: float, **labels: str) -> None:
        self._ops.put(lambda: self._get(family, **labels).set(value))


class RouterMetrics(_MetricsThread):
    """The router's."""

    def __init__(self, pb: Any) -> None:
        F = pb.MetricFamily
        self.decisions = F("tmr_routing_decisions_total", "Requests routed, by use case and chosen model", F.COUNTER)
        self.fallbacks = F("tmr_fallbacks_total", "Fallbacks: a model failed and the next one was tried", F.COUNTER)
        self.loads = F("tmr_model_loads_total", "Model loads by the router, by result", F.COUNTER)
        self.evictions = F("tmr_model_evictions_total", "Models unloaded by the router, by reason", F.COUNTER)
        self.load_seconds = F("tmr_model_load_duration_seconds", "Model-control load duration", F.HISTOGRAM)
        self.classifier_seconds = F("tmr_classifier_latency_seconds", "Classifier BLS call latency", F.HISTOGRAM)
        self.rejections = F("tmr_rejected_total", "Requests turned away by the router's admission limits", F.COUNTER)
        self.memory = F("tmr_memory_used_mb", "Memory of the models loaded (the larger of declared and measured)",
                        F.GAUGE)
        self.cancellations = F("tmr_cancelled_total", "Requests whose client gave up before the answer, by use case",
                               F.COUNTER)
        self.recoveries = F("tmr_model_recoveries_total", "Reloads of a model whose stub died, by result", F.COUNTER)
        self.inflight = F("tmr_requests_inflight", "Requests the router admitted and has not finished (running and "
                          "waiting): the load to scale replicas on", F.GAUGE)
        self.footprint = F("tmr_model_memory_mb", "Memory of each model: declared, and measured (max seen)", F.GAUGE)
        super().__init__()

    def decision(self, use_case: str, model: str) -> None:
        self._add(self.decisions, use_case=use_case, model=model)

    def fallback(self, use_case: str, model: str) -> None:
        self._add(self.fallbacks, use_case=use_case, model=model)

    def classifier_latency(self, seconds: float) -> None:
        self._observe(self.classifier_seconds, CLASSIFIER_BUCKETS, seconds)

    def loaded(self, model: str, seconds: float) -> None:
        self._add(self.loads, model=model, result="ok")
        self._observe(self.load_seconds, LOAD_BUCKETS, seconds, model=model)

    def load_failed(self, model: str, error: str) -> None:
        self._add(self.loads, model=model, result="failed")

    def evicted(self, model: str, reason: str) -> None:
        self._add(self.evictions, model=model, reason=reason)

    def rejected(self) -> None:
        self._add(self.rejections)

    def cancelled(self, use_case: str) -> None:
        self._add(self.cancellations, use_case=use_case or "unknown")

    def requests_inflight(self, count: int) -> None:
        self._set(self.inflight, count)

    def recovered(self, model: str, result: str) -> None:
        self._add(self.recoveries, model=model, result=result)

    def model_memory(self, model: str, kind: str, mb: float) -> None:
        self._set(self.footprint, mb, model=model, kind=kind)

    def measured(self, model: str, host_mb: float, gpu_mb: float) -> None:
        self.model_memory(model, "measured", host_mb)
        self.model_memory(model, "gpu_measured", gpu_mb)

    def memory_used(self, host_mb: float, gpu_mb: float) -> None:
        self._set(self.memory, host_mb, kind="host")
        self._set(self.memory, gpu_mb, kind="gpu")


class GenerationMetrics(_MetricsThread):
    """Our transformers backend's text generation, per model."""

    def __init__(self, pb: Any, model: str) -> None:
        F = pb.MetricFamily
        self.model = model
        self.tokens = F("tmr_generation_tokens_total", "Tokens generated (continuous batching), by model", F.COUNTER)
        self.requests = F("tmr_generation_requests_total",
                          "Generation requests ended, by model and result (finished, cancelled, failed)", F.COUNTER)
        self.batch = F("tmr_generation_batch_rows", "Requests in each generation step, by model", F.HISTOGRAM)
        super().__init__()

    def step(self, rows: int) -> None:
        self._add(self.tokens, rows, model=self.model)
        self._observe(self.batch, BATCH_BUCKETS, rows, model=self.model)

    def ended(self, result: str) -> None:
        self._add(self.requests, model=self.model, result=result)
