"""Triton adapter for model_router.routing.Router: tensors in, BLS out, responses (streamed) back.

Each request runs on a worker thread, so that a slow load or a long generation never holds up
the others; execute() only admits and schedules (model_router.serving.admission bounds how many
run and wait, and for how long). A health check (and the admin's cache stats or clear, and a client's
feedback on an answer) is answered in execute() itself, ahead of the queue, so that probes pass while
the router is full.
"""
from __future__ import annotations

import functools
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import triton_python_backend_utils as pb_utils

from model_router.cache import ResponseCache
from model_router.contract.control import Heartbeat, Peek
from model_router.contract.request import Feedback
from model_router.contract.router import RouterAnswer, RouterRequest
from model_router.errors import Cancelled, InputError
from model_router.routing.cached import Revision, RouterCache
from model_router.routing.decision_log import DecisionLog
from model_router.routing.router import Router
from model_router.serving.admission import Admission, Overloaded
from model_router.serving.health import HealthTracker
from model_router.serving.heartbeat import Outbox
from model_router.serving.loader import Limits, LoaderEvents, ModelLoader
from model_router.serving.memory import detect_gpu
from model_router.serving.recovery import Recovery, RecoveryEvents
from model_router.serving.status import Tally, cache_admin, deep_health
from model_router.serving.stubs import host_mb, stub_pids
from model_router.settings import RouterSettings
from model_router import tracing
from model_router.triton import traces
from model_router.triton.adapter import FINAL, collect_no_more, error_response, getter, response
from model_router.triton.bls import Bls
from model_router.triton.control import TritonModelControl, vllm_override
from model_router.triton.metrics import MetricsModelSink, RouterMetrics

FINALIZE_WAIT_S = 10.0


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        self.settings = s = RouterSettings.read(json.loads(args["model_config"]))
        tracing.setup("tmr-router")  # only with OTEL_EXPORTER_OTLP_ENDPOINT set: off (no cost) otherwise
        self.repository = Path(args["model_repository"]).parent
        self.repositories = (self.repository, *s.model_repositories)
        self.registry, self.profile, unknown = s.load_registry(self.repositories)
        if unknown:
            pb_utils.Logger.log_warn(f"router: no config of {unknown} in {[str(r) for r in self.repositories]}: "
                                     "their limits are the defaults (set TMR_MODEL_REPOSITORIES)")
        self.gpu = detect_gpu() if self.profile.name == "gpu" else None
        self.control = TritonModelControl(s.control_url, {"admin-key": s.admin_key} if s.admin_key else None)
        self.metrics = RouterMetrics(MetricsModelSink(pb_utils, self.control.load))
        self.tally = Tally()
        self.loader = self._loader()
        self.health = HealthTracker(s.failure_threshold, s.cooldown_s)
        self.recovery = self._recovery()
        # An unreachable Redis is a warning and no cache until it answers (tmr health --deep says so).
        self.cache = ResponseCache(s.cache_url, int(s.cache_max_mb * 2**20), s.cache_ttl_s, metrics=self.metrics)
        # A log that cannot be written is a warning, never a request that fails (routing.decision_log).
        self.decisions = DecisionLog.open(s.decision_log)
        self.router = self._router(self.repository)
        self.pool = ThreadPoolExecutor(s.workers, thread_name_prefix="route")
        self.admission = Admission(s.workers, s.max_queued, s.max_wait_s)
        self.loader.start_reaper(extra=self.recovery.check)
        # Every response goes out on one thread (concurrent sends crashed Triton 24.10's stub: serving.heartbeat).
        self.outbox = Outbox(lambda: response(Heartbeat.encode()))
        self._stop = threading.Event()
        threading.Thread(target=self._drop_abandoned, name="abandoned", daemon=True).start()
        pb_utils.Logger.log_info(f"router: profile {self.profile.name}, budget {self.loader.budget_mb:.0f} MB, "
                                 f"decision log {self.decisions.store.where if self.decisions.store else 'off'}, "
                                 f"learned policy {self.router.learned.variant if self.router.learned else 'off'}")

    def _loader(self) -> ModelLoader:
        s, managed = self.settings, self.registry.managed(self.profile.name)
        for m in managed:
            self.metrics.model_memory(m.name, "declared", m.memory_mb)
            self.metrics.model_memory(m.name, "gpu_declared", m.gpu_memory_mb)
        return ModelLoader(
            self.control, {m.name: (m.memory_mb, m.gpu_memory_mb, m.pinned) for m in managed},
            s.memory_budget_mb if s.memory_budget_mb is not None else self.profile.memory_budget_mb,
            s.gpu_memory_budget_mb if s.gpu_memory_budget_mb is not None else self.profile.gpu_memory_budget_mb,
            gpu=self.gpu, idle_unload_s=s.idle_unload_s if s.idle_unload_s is not None else self.profile.idle_unload_s,
            limits=Limits(min_residency_s=s.min_residency_s, max_loads=s.max_loads, load_window_s=s.load_window_s),
            measure=self._measure, overrides=self._gpu_share if self.gpu else None,
            events=LoaderEvents(loaded=lambda m, s: (self.metrics.loaded(m, s), self.tally.loaded(m, s)),
                                load_failed=self.metrics.load_failed, measured=self.metrics.measured,
                                evicted=lambda m, why: (self.metrics.evicted(m, why), self.tally.unloaded(m, why))))

    def _gpu_share(self, model: str) -> tuple[str, dict[str, bytes]] | None:
        """A vLLM model (its engine arguments in 1/model.json) loads with gpu_memory_utilization sized from
        its registry GPU memory and this card's real total, so that one repository fits 40-141 GB cards."""
        folder = next((r / model for r in self.repositories if (r / model / "1" / "model.json").is_file()), None)
        if folder is None:
            return None
        return vllm_override(folder, self.gpu.total_mb(), self.registry.model(model).gpu_memory_mb)

    def _recovery(self) -> Recovery:
        return Recovery(self.loader, stub_pids, self.control.config, backoff_s=self.settings.recovery_backoff_s,
                        events=RecoveryEvents(recovered=self.metrics.recovered), triton_states=self.control.states)

    def _router(self, repository: Path) -> Router:
        bls, name = Bls(pb_utils), self.profile.name
        cache = RouterCache(self.cache, name, Revision(self.registry, name, repository), self.settings.cache_mode)
        # A query seen lately is not classified again: the classifier is a pure function of the text and
        # attachment kinds, and its BLS hop is most of the router's own cost on a short answer.
        classify = traces.classify(functools.lru_cache(maxsize=4096)(bls.classify))
        # Traced (model_router.triton.traces) when OTEL_EXPORTER_OTLP_ENDPOINT is set; as they are otherwise.
        return Router(self.registry, name, classify, traces.invoke(bls.invoke), traces.loader(self.loader),
                      self.health, self.metrics, recovering=self.recovery.recovering,
                      on_target_error=self.recovery.suspect, admin_key=self.settings.admin_key, cache=cache,
                      decisions=self.decisions,
                      learned=self.settings.learned(functools.lru_cache(maxsize=256)(self.cache.embed)))

    def _measure(self, model: str) -> tuple[float, float]:
        """What a model's stub processes hold: host PSS, and on GPUs NVML's per-process memory."""
        pids = stub_pids().get(model, [])
        return host_mb(pids), self.gpu.used_by(pids) if self.gpu and pids else 0.0

    def execute(self, requests):
        for request in requests:
            peek = Peek.decode(getter(request))
            # Ahead of admission: a probe (or the admin) must not wait behind user traffic.
            if peek.ahead:
                self._health(request, self._line(request))
                continue
            try:
                ticket = self.admission.admit(request)
            except Overloaded as exc:  # turned away at once: nothing was started
                self._line(request).send(error_response(exc, "router"), FINAL)
                self.metrics.rejected()
                continue
            # Beats start now: waiting for a worker is working too.
            line = ticket.line = self._line(request, peek.heartbeat.interval_s if peek.heartbeat else None)
            self.pool.submit(self._handle, request, ticket, line)
        self.metrics.requests_inflight(self.admission.inside)
        return None

    def _line(self, request, heartbeat_s: float | None = None):
        sender = request.get_response_sender()
        return self.outbox.open(lambda r, f: sender.send(r, flags=f) if r is not None else sender.send(flags=f),
                                heartbeat_s)

    def _health(self, request, sender) -> None:
        try:
            opts = RouterRequest.decode(getter(request), self.settings.max_text_chars).options
            if opts.feedback:
                answer = RouterAnswer("recorded", decision=self._feedback(opts.feedback))
            elif opts.cache_admin:
                report = cache_admin(self.cache, opts.cache_admin, opts.admin_key, self.settings.admin_key)
                answer = RouterAnswer(opts.cache_admin, decision=report)
            else:
                report = deep_health(self.loader, self.recovery, self.health, self.cache, self.tally)
                answer = RouterAnswer("ready" if report["ready"] else "not ready", decision=report)
            sender.send(response(answer.encode()), FINAL)
        except Exception as exc:
            sender.send(error_response(exc, "router"), FINAL)

    def _feedback(self, feedback: Feedback) -> dict:
        """The outcome logged; a refusal names the client's field (options.feedback.<name>)."""
        try:
            return self.decisions.outcome(feedback.decision_id, feedback.score)
        except InputError as exc:
            raise InputError(f"options.{exc.field}", str(exc).partition(": ")[2]) from None

    def _drop_abandoned(self) -> None:
        """Requests waiting for a worker whose client left give their place back at once."""
        while not self._stop.wait(0.5):
            for ticket in self.admission.drop_waiting(lambda request: request.is_cancelled()):
                self.metrics.cancelled("")
                line = ticket.line
                line.send(error_response(Cancelled("while waiting"), "router"), FINAL)
                self.outbox.done(line)

    def _handle(self, request, ticket, sender) -> None:
        """Route one request; every response goes through `sender`, its heartbeat line."""
        try:
            if not self.admission.start(ticket):
                return  # dropped while it waited: answered already
        except Overloaded as exc:
            self.metrics.rejected()
            sender.send(error_response(exc, "router"), FINAL)
            self.outbox.done(sender)
            return
        try:
            if request.is_cancelled():
                self.metrics.cancelled("")
                raise Cancelled("while waiting")
            req = RouterRequest.decode(getter(request), self.settings.max_text_chars)
            streamed = False  # text that may be a tool call is held back: a streamed request can get none
            for answer in traces.route(self.router.route(req, request.is_cancelled), req.options):
                if not answer.final:
                    streamed = True
                    sender.send(response(answer.encode()))
                else:
                    sender.send(response((answer.sent_in_pieces() if streamed else answer).encode()), FINAL)
        except Exception as exc:
            sender.send(error_response(exc, "router"), FINAL)
        finally:
            self.outbox.done(sender)
            self.admission.done()
            self.metrics.requests_inflight(self.admission.inside)
            self.metrics.memory_used(*self.loader.used_mb())

    def finalize(self) -> None:
        collect_no_more()
        self.metrics.sink.close()  # from now on nothing is loaded for metrics, not even tmr_metrics
        # No BLS call from here on but the requests' own: Triton 24.10 has stopped the thread pool that
        # serves this stub's BLS calls when it asks the stub to finalize, and a call queued then is freed
        # after the stub's shared memory (SIGSEGV in TRITONBACKEND_ModelInstanceFinalize, then an abort).
        self.metrics.close(deliver=False)
        self._stop.set()
        self.loader.stop()
        # Requests still running get FINALIZE_WAIT_S to finish; a worker stuck in a call to a model that
        # will not answer must not hold the unload (and Triton's shutdown) for its whole deadline.
        waiter = threading.Thread(target=self.pool.shutdown, kwargs={"wait": True, "cancel_futures": True},
                                  daemon=True)
        waiter.start()
        waiter.join(FINALIZE_WAIT_S)
        if waiter.is_alive():
            pb_utils.Logger.log_warn(f"router: unloading with requests still running after {FINALIZE_WAIT_S:.0f} s")
        self.outbox.stop()  # after the workers: their last responses are delivered
