"""Triton adapter for model_router.routing.Router: tensors in, BLS out, responses (streamed) back.

Each request runs on a worker thread, so that a slow load or a long generation never holds up
the others; execute() only admits and schedules (model_router.serving.admission bounds how many
run and wait, and for how long).
"""
from __future__ import annotations

import base64
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import triton_python_backend_utils as pb_utils

from model_router.errors import Cancelled
from model_router.registry import REGISTRY_FILE, load_registry
from model_router.request import make_request
from model_router.routing.decision import Done, Piece
from model_router.routing.router import Router
from model_router.serving.admission import Admission, Overloaded
from model_router.serving.health import HealthTracker
from model_router.serving.loader import Limits, LoaderEvents, ModelLoader
from model_router.serving.memory import detect_gpu
from model_router.serving.recovery import Recovery, RecoveryEvents
from model_router.serving.status import deep_health
from model_router.serving.stubs import host_mb, stub_pids
from model_router.triton.adapter import FINAL, error_response, first, setting, strings
from model_router.triton.bls import Bls
from model_router.triton.control import TritonModelControl
from model_router.triton.metrics import MetricsModelSink, RouterMetrics
from model_router.vocabulary import ATTACHMENT_KINDS

ADMIN_KEY = os.environ.get("TMR_ADMIN_KEY")
FINALIZE_WAIT_S = 10.0


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        registry = load_registry(os.environ.get("TMR_REGISTRY", REGISTRY_FILE))
        profile = registry.profile(setting(config, "profile", "cpu"))
        self.max_chars = int(setting(config, "max_text_chars", "8000"))
        self.gpu = detect_gpu() if profile.name == "gpu" else None
        self.control = TritonModelControl(os.environ.get("TMR_CONTROL_URL", "127.0.0.1:8000"),
                                          {"admin-key": ADMIN_KEY} if ADMIN_KEY else None)
        self.metrics = RouterMetrics(MetricsModelSink(pb_utils, self.control.load))
        self.loader = self._loader(config, registry, profile)
        self.health = HealthTracker(int(setting(config, "failure_threshold", "2")),
                                    float(setting(config, "cooldown_s", "30")))
        self.recovery = Recovery(self.loader, stub_pids, self.control.config,
                                 backoff_s=tuple(float(x) for x in setting(config, "recovery_backoff_s",
                                                                           "0,30,120,600").split(",")),
                                 events=RecoveryEvents(recovered=self.metrics.recovered),
                                 triton_states=self.control.states)
        bls = Bls(pb_utils)
        self.router = Router(registry, profile.name, bls.classify, bls.invoke, self.loader, self.health, self.metrics,
                             recovering=self.recovery.recovering, on_target_error=self.recovery.suspect,
                             admin_key=ADMIN_KEY)
        workers = int(setting(config, "workers", "16"))
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="route")
        self.admission = Admission(workers, int(setting(config, "max_queued", "32")),
                                   float(setting(config, "max_wait_s", "60")))
        self.loader.start_reaper(extra=self.recovery.check)
        self._stop = threading.Event()
        threading.Thread(target=self._drop_abandoned, name="abandoned", daemon=True).start()
        pb_utils.Logger.log_info(f"router: profile {profile.name}, budget {self.loader.budget_mb:.0f} MB")

    def _loader(self, config: dict, registry, profile) -> ModelLoader:
        managed = registry.managed(profile.name)
        for m in managed:
            self.metrics.model_memory(m.name, "declared", m.memory_mb)
            self.metrics.model_memory(m.name, "gpu_declared", m.gpu_memory_mb)
        limits = Limits(min_residency_s=float(setting(config, "min_residency_s", "60")),
                        max_loads=int(setting(config, "max_loads", "6")),
                        load_window_s=float(setting(config, "load_window_s", "600")))
        return ModelLoader(
            self.control, {m.name: (m.memory_mb, m.gpu_memory_mb, m.pinned) for m in managed},
            float(setting(config, "memory_budget_mb", str(profile.memory_budget_mb))),
            float(setting(config, "gpu_memory_budget_mb", str(profile.gpu_memory_budget_mb))),
            gpu=self.gpu, idle_unload_s=float(setting(config, "idle_unload_s", str(profile.idle_unload_s))),
            limits=limits, measure=self._measure,
            events=LoaderEvents(loaded=self.metrics.loaded, load_failed=self.metrics.load_failed,
                                evicted=self.metrics.evicted, measured=self.metrics.measured))

    def _measure(self, model: str) -> tuple[float, float]:
        """What a model's stub processes hold: host PSS, and on GPUs NVML's per-process memory."""
        pids = stub_pids().get(model, [])
        return host_mb(pids), self.gpu.used_by(pids) if self.gpu and pids else 0.0

    def execute(self, requests):
        for request in requests:
            try:
                ticket = self.admission.admit(request)
            except Overloaded as exc:  # turned away at once: nothing was started
                request.get_response_sender().send(error_response(exc, "router"), flags=FINAL)
                self.metrics.rejected()
                continue
            self.pool.submit(self._handle, request, ticket)
        self.metrics.requests_inflight(self.admission.inside)
        return None

    def _drop_abandoned(self) -> None:
        """Requests waiting for a worker whose client left give their place back at once."""
        while not self._stop.wait(0.5):
            for ticket in self.admission.drop_waiting(lambda request: request.is_cancelled()):
                self.metrics.cancelled("")
                ticket.request.get_response_sender().send(error_response(Cancelled("while waiting"), "router"),
                                                          flags=FINAL)

    def _handle(self, request, ticket) -> None:
        sender = request.get_response_sender()
        try:
            if not self.admission.start(ticket):
                return  # dropped while it waited: answered already
        except Overloaded as exc:
            self.metrics.rejected()
            sender.send(error_response(exc, "router"), flags=FINAL)
            return
        try:
            if request.is_cancelled():
                self.metrics.cancelled("")
                raise Cancelled("while waiting")
            req = make_request(first(request, "text"), {k: first(request, k) for k in ATTACHMENT_KINDS},
                               first(request, "options"), self.max_chars, first(request, "messages"))
            if req.options.health:
                report = deep_health(self.loader, self.recovery, self.health)
                sender.send(pb_utils.InferenceResponse(output_tensors=[
                    strings("text_output", ["ready" if report["ready"] else "not ready"]),
                    strings("routing", [json.dumps(report)])]), flags=FINAL)
                return
            for event in self.router.route(req, request.is_cancelled):
                if isinstance(event, Piece):
                    sender.send(self._response(event.text))
                else:
                    sender.send(self._response("" if req.options.stream else event.text, event), flags=FINAL)
        except Exception as exc:
            sender.send(error_response(exc, "router"), flags=FINAL)
        finally:
            self.admission.done()
            self.metrics.requests_inflight(self.admission.inside)
            self.metrics.memory_used(*self.loader.used_mb())

    @staticmethod
    def _response(text: str, done: Done | None = None):
        out = [strings("text_output", [text])]
        if done is not None:
            out.append(strings("routing", [done.decision.to_json()]))
            if done.audio is not None:  # base64, so that it survives the JSON of Triton's HTTP generate route
                out.append(strings("audio", [base64.b64encode(done.audio)]))
            if done.visemes:
                out.append(strings("visemes", [json.dumps(done.visemes)]))
        return pb_utils.InferenceResponse(output_tensors=out)

    def finalize(self) -> None:
        self.metrics.sink.close()  # from now on nothing is loaded for metrics, not even tmr_metrics
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
        self.metrics.close()
