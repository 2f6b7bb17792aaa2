"""All of the router's Prometheus metrics, as pb_utils.MetricFamily, on Triton's metrics port.

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
CLASSIFIER_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25]


class TritonMetrics:
    def __init__(self, pb: Any) -> None:
        F = pb.MetricFamily
        self._pb = pb
        self.decisions = F("tmr_routing_decisions_total", "Requests routed, by use case and chosen model", F.COUNTER)
        self.fallbacks = F("tmr_fallbacks_total", "Fallbacks: a model failed and the next one was tried", F.COUNTER)
        self.loads = F("tmr_model_loads_total", "Model loads by the router, by result", F.COUNTER)
        self.evictions = F("tmr_model_evictions_total", "Models unloaded by the router, by reason", F.COUNTER)
        self.load_seconds = F("tmr_model_load_duration_seconds", "Model-control load duration", F.HISTOGRAM)
        self.classifier_seconds = F("tmr_classifier_latency_seconds", "Classifier BLS call latency", F.HISTOGRAM)
        self.rejections = F("tmr_rejected_total", "Requests turned away by the router's admission limits", F.COUNTER)
        self.memory = F("tmr_memory_used_mb", "Declared memory of the models loaded by the router", F.GAUGE)
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

    def memory_used(self, host_mb: float, gpu_mb: float) -> None:
        self._set(self.memory, host_mb, kind="host")
        self._set(self.memory, gpu_mb, kind="gpu")
