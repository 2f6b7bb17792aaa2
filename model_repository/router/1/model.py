"""Triton adapter for model_router.Router: tensors in, BLS out, responses (streamed) back.

Each request runs on a worker thread, so that a slow load or a long generation never holds up
the others; execute() only admits and schedules (model_router.admission bounds how many run and
wait, and for how long).
"""
from __future__ import annotations

import base64
import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import triton_python_backend_utils as pb_utils

from model_router.admission import Admission, Overloaded
from model_router.classifier import Classification
from model_router.errors import InputError, ServingError
from model_router.health import HealthTracker
from model_router.loader import LoaderEvents, ModelLoader
from model_router.memory import detect_gpu
from model_router.metrics import TritonMetrics
from model_router.options import make_request
from model_router.registry import REGISTRY_FILE, load_registry
from model_router.router import Router, TargetError
from model_router.streams import StreamTimeout, with_deadline
from model_router.triton_control import TritonModelControl

_FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def _setting(params: dict, key: str, default: str) -> str:
    """Environment TMR_<KEY> wins over the config parameter, which wins over the default."""
    return os.environ.get(f"TMR_{key.upper()}", params.get(key, {}).get("string_value", default))


def _bytes(tensor) -> np.ndarray:
    return np.array([v.encode() if isinstance(v, str) else v for v in tensor.reshape(-1)], dtype=np.object_)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = json.loads(args["model_config"]).get("parameters", {})
        registry = load_registry(os.environ.get("TMR_REGISTRY", REGISTRY_FILE))
        profile = registry.profile(_setting(params, "profile", "cpu"))
        self.max_chars = int(_setting(params, "max_text_chars", "8000"))
        self.metrics = TritonMetrics(pb_utils)
        key = os.environ.get("TMR_ADMIN_KEY")
        control = TritonModelControl(os.environ.get("TMR_CONTROL_URL", "127.0.0.1:8000"),
                                     {"admin-key": key} if key else None)
        managed = {m.name: (m.memory_mb, m.gpu_memory_mb, m.pinned)
                   for m in registry.models.values() if profile.name in m.profiles}
        self.loader = ModelLoader(
            control, managed, float(_setting(params, "memory_budget_mb", str(profile.memory_budget_mb))),
            float(_setting(params, "gpu_memory_budget_mb", str(profile.gpu_memory_budget_mb))),
            gpu=detect_gpu() if profile.name == "gpu" else None,
            idle_unload_s=float(_setting(params, "idle_unload_s", str(profile.idle_unload_s))),
            events=LoaderEvents(loaded=self.metrics.loaded, load_failed=self.metrics.load_failed,
                                evicted=self.metrics.evicted))
        health = HealthTracker(int(_setting(params, "failure_threshold", "2")), float(_setting(params, "cooldown_s", "30")))
        self.router = Router(registry, profile.name, self._classify, self._invoke, self.loader, health, self.metrics)
        workers = int(_setting(params, "workers", "16"))
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="route")
        self.admission = Admission(workers, int(_setting(params, "max_queued", "32")),
                                   float(_setting(params, "max_wait_s", "60")))
        self.loader.start_reaper()
        pb_utils.Logger.log_info(f"router: profile {profile.name}, budget {self.loader.budget_mb:.0f} MB")

    def execute(self, requests):
        for request in requests:
            try:
                ticket = self.admission.admit()
            except Overloaded as exc:  # turned away at once: nothing was started
                request.get_response_sender().send(
                    pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc), pb_utils.TritonError.UNAVAILABLE)),
                    flags=_FINAL)
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
            sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc), pb_utils.TritonError.UNAVAILABLE)),
                        flags=_FINAL)
            return
        try:
            def tensor(name):
                t = pb_utils.get_input_tensor_by_name(request, name)
                return None if t is None else t.as_numpy().reshape(-1)[0]

            req = make_request(tensor("text"), {k: tensor(k) for k in ("image", "audio", "video")}, tensor("options"),
                               self.max_chars)
            for event in self.router.route(req):
                if event[0] == "text":
                    sender.send(self._response(event[1]))
                else:
                    _, decision, text, extras = event
                    sender.send(self._response("" if req.options.stream else text, decision.to_json(), extras),
                                flags=_FINAL)
        except Exception as exc:
            codes = {InputError: pb_utils.TritonError.INVALID_ARG, ServingError: pb_utils.TritonError.UNAVAILABLE}
            code = next((c for t, c in codes.items() if isinstance(exc, t)), pb_utils.TritonError.INTERNAL)
            if code == pb_utils.TritonError.INTERNAL:
                pb_utils.Logger.log_error(f"router: {exc!r}")
            sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc), code)), flags=_FINAL)
        finally:
            self.admission.done()
            host, gpu = self.loader.used_mb()
            self.metrics.memory_used(host, gpu)

    @staticmethod
    def _response(text: str, routing: str | None = None, extras: dict | None = None):
        out = [pb_utils.Tensor("text_output", np.array([text.encode()], dtype=np.object_))]
        if routing is not None:
            out.append(pb_utils.Tensor("routing", np.array([routing.encode()], dtype=np.object_)))
        extras = extras or {}
        if "audio" in extras:  # base64, so that it survives the JSON of Triton's HTTP generate route
            out.append(pb_utils.Tensor("audio", np.array([base64.b64encode(extras["audio"])], dtype=np.object_)))
        if "visemes" in extras:
            out.append(pb_utils.Tensor("visemes", np.array([json.dumps(extras["visemes"]).encode()], dtype=np.object_)))
        return pb_utils.InferenceResponse(output_tensors=out)

    def _classify(self, text: str, kinds: tuple[str, ...]) -> Classification:
        inputs = [pb_utils.Tensor("text", np.array([[text.encode()]], dtype=np.object_))]
        if kinds:
            inputs.append(pb_utils.Tensor("attachments", np.array([[k.encode() for k in kinds]], dtype=np.object_)))
        resp = pb_utils.InferenceRequest(model_name="query_classifier", inputs=inputs,
                                         requested_output_names=["classification"]).exec()
        if resp.has_error():
            raise InputError("text", resp.error().message()) if resp.error().code() == pb_utils.TritonError.INVALID_ARG \
                else ServingError(f"query_classifier: {resp.error().message()}")
        raw = pb_utils.get_output_tensor_by_name(resp, "classification").as_numpy().reshape(-1)[0]
        return Classification(**json.loads(raw))

    def _invoke(self, model, inputs: dict[str, np.ndarray], stream: bool, timeout_s: float, outputs: list[str]):
        tensors = [pb_utils.Tensor(k, _bytes(v) if v.dtype == np.object_ else v) for k, v in inputs.items()]
        request = pb_utils.InferenceRequest(model_name=model.name, inputs=tensors, requested_output_names=outputs,
                                            timeout=int(timeout_s * 1e6))
        started: dict = {}

        def exec_request():
            try:  # text generators are decoupled (the vLLM contract); the others answer once
                started["responses"] = request.exec(decoupled=True) if model.streams else [request.exec()]
            except pb_utils.TritonModelException as exc:
                raise TargetError(f"{model.name}: {exc}") from exc
            yield from started["responses"]

        def cancel() -> None:
            if hasattr(started.get("responses"), "cancel"):
                started["responses"].cancel()

        responses = with_deadline(exec_request, timeout_s, cancel)
        try:
            yield from self._outputs(model, responses, outputs)
        except StreamTimeout as exc:
            raise TargetError(f"{model.name}: {exc} (options.timeout_s; a stub that died mid-request "
                              "never answers)") from None

    @staticmethod
    def _outputs(model, responses, outputs: list[str]):
        for resp in responses:
            if resp.has_error():
                err = resp.error()
                if err.code() == pb_utils.TritonError.INVALID_ARG:
                    raise InputError.from_message(err.message(), "text")
                raise TargetError(f"{model.name}: {err.message()}")
            got = {name: pb_utils.get_output_tensor_by_name(resp, name) for name in outputs}
            if any(t is not None for t in got.values()):  # a decoupled model's final response may be empty
                yield {name: t.as_numpy() for name, t in got.items() if t is not None}

    def finalize(self) -> None:
        self.loader.stop()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.metrics.close()
