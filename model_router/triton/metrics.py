"""All of our Prometheus metrics (the router's and our backend's generation), as pb_utils.MetricFamily,
on Triton's metrics port.

Names follow <namespace>_<what>_<unit>[_total]; every family carries a `model` label where one
model is concerned. The families are data (ROUTER_FAMILIES, GENERATION_FAMILIES); a recorder turns
each event into an op (family, how, value, labels) and hands the ops, in order and off the caller's
thread, to whatever applies them. The pb_utils module is passed in, so that this package never
imports it.

Where the ops are applied, and why:
- pb_utils metric calls from several threads at once crash tritonserver 24.10 (std::bad_alloc or
  boost lock_exception in the Python backend), so one thread applies them;
- one metric call while other threads of the same stub are in BLS calls crashed the router's stub
  (a segmentation fault in the metric call, 8 threads in InferenceRequest.exec; twice in a few
  dozen runs of 16 streams at once). So the router applies none: it ships its ops through BLS to
  the `tmr_metrics` model, which owns the router's families and applies them in its execute. Our
  backend's generation stub makes no BLS calls and applies its own.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable


from ..contract.metrics import MODEL as METRICS_MODEL
from ..contract.metrics import MetricOps

LOAD_BUCKETS = [0.5, 1, 2, 4, 8, 16, 32, 64, 128]
BATCH_BUCKETS = [1, 2, 4, 8, 16, 32]
CLASSIFIER_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25]

# name: (kind, help, histogram buckets)
Families = dict[str, tuple[str, str, list[float] | None]]
ROUTER_FAMILIES: Families = {
    "tmr_routing_decisions_total": ("counter", "Requests routed, by use case and chosen model", None),
    "tmr_fallbacks_total": ("counter", "Fallbacks: a model failed and the next one was tried", None),
    "tmr_model_loads_total": ("counter", "Model loads by the router, by result", None),
    "tmr_model_evictions_total": ("counter", "Models unloaded by the router, by reason", None),
    "tmr_model_load_duration_seconds": ("histogram", "Model-control load duration", LOAD_BUCKETS),
    "tmr_classifier_latency_seconds": ("histogram", "Classifier BLS call latency", CLASSIFIER_BUCKETS),
    "tmr_rejected_total": ("counter", "Requests turned away by the router's admission limits", None),
    "tmr_memory_used_mb": ("gauge", "Memory of the models loaded (the larger of declared and measured)", None),
    "tmr_cancelled_total": ("counter", "Requests whose client gave up before the answer, by use case", None),
    "tmr_model_recoveries_total": ("counter", "Reloads of a model whose stub died, by result", None),
    "tmr_requests_inflight": ("gauge", "Requests the router admitted and has not finished (running and waiting): "
                                       "the load to scale replicas on", None),
    "tmr_model_memory_mb": ("gauge", "Memory of each model: declared, and measured (max seen)", None),
    "tmr_cache_hits_total": ("counter", "Requests answered from the response cache, by mode (exact, semantic)", None),
    "tmr_cache_misses_total": ("counter", "Cacheable requests the response cache did not hold", None),
    "tmr_cache_errors_total": ("counter", "Response cache store errors (answered without it), by operation", None),
    "tmr_cache_bytes": ("gauge", "Bytes the response cache holds (Redis: the server's memory in use)", None),
}
GENERATION_FAMILIES: Families = {
    "tmr_generation_tokens_total": ("counter", "Tokens generated (continuous batching), by model", None),
    "tmr_generation_requests_total": ("counter", "Generation requests ended, by model and result "
                                                 "(finished, cancelled, failed)", None),
    "tmr_generation_batch_rows": ("histogram", "Requests in each generation step, by model", BATCH_BUCKETS),
}
Op = tuple[str, str, float, dict[str, str]]  # (family, how, value, labels)
HOW = ("add", "set", "observe")


class MetricFamilies:
    """The pb_utils families of `specs` and their metrics by labels. apply() on one thread only."""

    def __init__(self, pb: Any, specs: Families) -> None:
        kinds = {"counter": pb.MetricFamily.COUNTER, "gauge": pb.MetricFamily.GAUGE,
                 "histogram": pb.MetricFamily.HISTOGRAM}
        self._families = {name: pb.MetricFamily(name, doc, kinds[kind]) for name, (kind, doc, _) in specs.items()}
        self._buckets = {name: buckets for name, (_, _, buckets) in specs.items()}
        self._metrics: dict[tuple, Any] = {}

    def close(self) -> None:
        """Let go of the metrics while the server still answers: a family that outlives the model is
        freed at the stub's exit, after its shared memory is gone, and crashes the stub there."""
        self._metrics.clear()
        self._families.clear()

    def apply(self, ops: list[Op]) -> None:
        for family, how, value, labels in ops:
            key = (family, tuple(sorted(labels.items())))
            if key not in self._metrics:
                buckets = self._buckets[family]
                self._metrics[key] = (self._families[family].Metric(labels=labels, buckets=buckets) if buckets
                                      else self._families[family].Metric(labels=labels))
            metric = self._metrics[key]
            {"add": metric.increment, "set": metric.set, "observe": metric.observe}[how](value)


class MetricsModelSink:
    """Delivers the router's ops to the tmr_metrics model through BLS, loading it when it is not loaded
    (`load`: model control); ops wait (the newest MAX_PENDING) until it takes them."""

    MAX_PENDING = 10_000
    RETRY_S = 2.0

    def __init__(self, pb: Any, load: Callable[[str], None]) -> None:
        self.pb, self.load = pb, load
        self._pending: list[Op] = []
        self._retry_at = 0.0
        self.closing = False  # the router is being unloaded: deliver what it can, load nothing

    def close(self) -> None:
        self.closing = True

    def __call__(self, ops: list[Op]) -> bool:
        """Deliver `ops` and any still pending; False while they must wait (call again later)."""
        self._pending = (self._pending + ops)[-self.MAX_PENDING:]
        if not self._pending or time.monotonic() < self._retry_at:
            return not self._pending
        pb = self.pb
        req = MetricOps(tuple(self._pending))
        response = pb.InferenceRequest(model_name=METRICS_MODEL, requested_output_names=list(req.outputs),
                                       inputs=[pb.Tensor(k, v) for k, v in req.encode().items()]).exec()
        if not response.has_error():
            self._pending = []
            return True
        self._retry_at = time.monotonic() + self.RETRY_S
        if self.closing:
            return True
        try:
            self.load(METRICS_MODEL)  # not loaded (or gone): bring it, then the next round delivers
        except Exception:  # model control unreachable or refusing: try again next round
            pass
        return False


class _Recorder:
    """Turns events into ops and hands them in batches, in order, to `deliver` on a thread of its own:
    a request never waits for a metric. Ops gather for up to `gather_s` after the first, so that a busy
    router makes a few deliveries a second rather than one per request (each one a BLS call)."""

    RESEND_S = 30.0  # a gauge set to the value it has is sent again only this often

    def __init__(self, deliver: Callable[[list[Op]], Any], gather_s: float = 0.0) -> None:
        self._deliver, self._gather_s = deliver, gather_s
        self._ops: queue.SimpleQueue[Op | None] = queue.SimpleQueue()
        self._dropping = False
        self._last_set: dict[tuple, tuple[float, float]] = {}  # gauge -> (value, when sent)
        self._thread = threading.Thread(target=self._run, name="metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        waiting = False  # ops the deliverer could not take yet: try again within a second
        while True:
            try:
                op = self._ops.get(timeout=1.0 if waiting else None)
            except queue.Empty:
                op = ()
            batch: list[Op] = [op] if op else []
            if op and self._gather_s:
                time.sleep(self._gather_s)  # let the ops of requests running now join this delivery
            while op is not None:
                try:
                    op = self._ops.get_nowait()
                except queue.Empty:
                    break
                if op is not None:
                    batch.append(op)
            try:
                waiting = not self._dropping and self._deliver(batch) is False
            except Exception:  # a metric must never take a request down
                waiting = False
            if op is None:
                return

    def close(self, deliver: bool = True) -> None:
        """Stop the thread: what is queued is delivered first, or (`deliver` False) dropped."""
        self._dropping = not deliver
        self._ops.put(None)
        self._thread.join(timeout=5)

    def _add(self, family: str, value: float = 1, **labels: str) -> None:
        self._ops.put((family, "add", value, labels))

    def _observe(self, family: str, value: float, **labels: str) -> None:
        self._ops.put((family, "observe", value, labels))

    def _set(self, family: str, value: float, **labels: str) -> None:
        # An idle router measures its models every second: the same values need no delivery (a BLS call).
        key, now = (family, tuple(sorted(labels.items()))), time.monotonic()
        last = self._last_set.get(key)
        if last is not None and last[0] == value and now - last[1] < self.RESEND_S:
            return
        self._last_set[key] = (value, now)
        self._ops.put((family, "set", value, labels))


class RouterMetrics(_Recorder):
    """The router's events, delivered by a MetricsModelSink."""

    GATHER_S = 0.25

    def __init__(self, sink: MetricsModelSink) -> None:
        self.sink = sink  # closed first by the router's finalize: what is queued is delivered, nothing loaded
        super().__init__(sink, self.GATHER_S)

    def decision(self, use_case: str, model: str) -> None:
        self._add("tmr_routing_decisions_total", use_case=use_case, model=model)

    def fallback(self, use_case: str, model: str) -> None:
        self._add("tmr_fallbacks_total", use_case=use_case, model=model)

    def classifier_latency(self, seconds: float) -> None:
        self._observe("tmr_classifier_latency_seconds", seconds)

    def loaded(self, model: str, seconds: float) -> None:
        self._add("tmr_model_loads_total", model=model, result="ok")
        self._observe("tmr_model_load_duration_seconds", seconds, model=model)

    def load_failed(self, model: str, error: str) -> None:
        self._add("tmr_model_loads_total", model=model, result="failed")

    def evicted(self, model: str, reason: str) -> None:
        self._add("tmr_model_evictions_total", model=model, reason=reason)

    def rejected(self) -> None:
        self._add("tmr_rejected_total")

    def cancelled(self, use_case: str) -> None:
        self._add("tmr_cancelled_total", use_case=use_case or "unknown")

    def requests_inflight(self, count: int) -> None:
        self._set("tmr_requests_inflight", count)

    def recovered(self, model: str, result: str) -> None:
        self._add("tmr_model_recoveries_total", model=model, result=result)

    def model_memory(self, model: str, kind: str, mb: float) -> None:
        self._set("tmr_model_memory_mb", mb, model=model, kind=kind)

    def measured(self, model: str, host_mb: float, gpu_mb: float) -> None:
        self.model_memory(model, "measured", host_mb)
        self.model_memory(model, "gpu_measured", gpu_mb)

    def memory_used(self, host_mb: float, gpu_mb: float) -> None:
        self._set("tmr_memory_used_mb", host_mb, kind="host")
        self._set("tmr_memory_used_mb", gpu_mb, kind="gpu")

    def cache_hit(self, mode: str) -> None:
        self._add("tmr_cache_hits_total", mode=mode)

    def cache_miss(self) -> None:
        self._add("tmr_cache_misses_total")

    def cache_error(self, operation: str) -> None:
        self._add("tmr_cache_errors_total", operation=operation)

    def cache_bytes(self, nbytes: int) -> None:
        self._set("tmr_cache_bytes", nbytes)


class GenerationMetrics(_Recorder):
    """Our transformers backend's text generation, per model, applied in its own stub."""

    def __init__(self, pb: Any, model: str) -> None:
        self.model, self.families = model, MetricFamilies(pb, GENERATION_FAMILIES)
        super().__init__(self.families.apply)

    def close(self) -> None:
        super().close()
        self.families.close()  # on this thread, the metrics thread gone

    def step(self, rows: int) -> None:
        self._add("tmr_generation_tokens_total", rows, model=self.model)
        self._observe("tmr_generation_batch_rows", rows, model=self.model)

    def ended(self, result: str) -> None:
        self._add("tmr_generation_requests_total", model=self.model, result=result)
