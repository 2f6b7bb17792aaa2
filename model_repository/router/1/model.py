"""Triton adapter for model_router.routing.Router: tensors in, BLS out, responses (streamed) back.

Each request runs on a worker thread, so that a slow load or a long generation never holds up
the others; execute() only admits and schedules (model_router.serving.admission bounds how many
run and wait, and for how long).
"""
from __future__ import annotations

import base64
import json
import os
from concurrent.futures import ThreadPoolExecutor

import triton_python_backend_utils as pb_utils

from model_router.registry import REGISTRY_FILE, load_registry
from model_router.request import make_request
from model_router.routing.decision import Done, Piece
from model_router.routing.router import Router
from model_router.serving.admission import Admission, Overloaded
from model_router.serving.health import HealthTracker
from model_router.serving.loader import LoaderEvents, ModelLoader
from model_router.serving.memory import detect_gpu
from model_router.triton.adapter import FINAL, error_response, first, setting, strings
from model_router.triton.bls import Bls
from model_router.triton.control import TritonModelControl
from model_router.triton.metrics import TritonMetrics
from model_router.vocabulary import ATTACHMENT_KINDS


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        registry = load_registry(os.environ.get("TMR_REGISTRY", REGISTRY_FILE))
        profile = registry.profile(setting(config, "profile", "cpu"))
        self.max_chars = int(setting(config, "max_text_chars", "8000"))
        self.metrics = TritonMetrics(pb_utils)
        self.loader = self._loader(config, registry, profile)
        health = HealthTracker(int(setting(config, "failure_threshold", "2")), float(setting(config, "cooldown_s", "30")))
        bls = Bls(pb_utils)
        self.router = Router(registry, profile.name, bls.classify, bls.invoke, self.loader, health, self.metrics)
        workers = int(setting(config, "workers", "16"))
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="route")
        self.admission = Admission(workers, int(setting(config, "max_queued", "32")),
                                   float(setting(config, "max_wait_s", "60")))
        self.loader.start_reaper()
        pb_utils.Logger.log_info(f"router: profile {profile.name}, budget {self.loader.budget_mb:.0f} MB")

    def _loader(self, config: dict, registry, profile) -> ModelLoader:
        key = os.environ.get("TMR_ADMIN_KEY")
        control = TritonModelControl(os.environ.get("TMR_CONTROL_URL", "127.0.0.1:8000"),
                                     {"admin-key": key} if key else None)
        return ModelLoader(
            control, {m.name: (m.memory_mb, m.gpu_memory_mb, m.pinned) for m in registry.managed(profile.name)},
            float(setting(config, "memory_budget_mb", str(profile.memory_budget_mb))),
            float(setting(config, "gpu_memory_budget_mb", str(profile.gpu_memory_budget_mb))),
            gpu=detect_gpu() if profile.name == "gpu" else None,
            idle_unload_s=float(setting(config, "idle_unload_s", str(profile.idle_unload_s))),
            events=LoaderEvents(loaded=self.metrics.loaded, load_failed=self.metrics.load_failed,
                                evicted=self.metrics.evicted))

    def execute(self, requests):
        for request in requests:
            try:
                ticket = self.admission.admit()
            except Overloaded as exc:  # turned away at once: nothing was started
                request.get_response_sender().send(error_response(exc, "router"), flags=FINAL)
                self.metrics.rejected()
                continue
            self.pool.submit(self._handle, request, ticket)
        return None

    def _handle(self, request, ticket) -> None:
        sender = request.get_response_sender()
        try:
            self.admission.start(ticket)
        except Overloaded as exc:
            self.metrics.rejected()
            sender.send(error_response(exc, "router"), flags=FINAL)
            return
        try:
            req = make_request(first(request, "text"), {k: first(request, k) for k in ATTACHMENT_KINDS},
                               first(request, "options"), self.max_chars)
            for event in self.router.route(req):
                if isinstance(event, Piece):
                    sender.send(self._response(event.text))
                else:
                    sender.send(self._response("" if req.options.stream else event.text, event), flags=FINAL)
        except Exception as exc:
            sender.send(error_response(exc, "router"), flags=FINAL)
        finally:
            self.admission.done()
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
        self.loader.stop()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.metrics.close()
