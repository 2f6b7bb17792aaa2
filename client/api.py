"""A small client over tritonclient: health, model control, generation (streaming over gRPC)."""
from __future__ import annotations

import queue
import time
import urllib.request
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from model_router.contract import classifier as classifier_contract
from model_router.contract import router as router_contract
from model_router.contract.control import Heartbeat, is_final
from model_router.contract.errors import ErrorKind, WireError
from model_router.contract.generation import GenerateOutput, GenerateRequest
from model_router.contract.request import RouteOptions
from model_router.contract.router import RouterAnswer, RouterInputs
from model_router.contract.sampling import SamplingParams

from .streams import StreamPool
from .wire import (RouterFailed, event_tensors, http_events, json_value, route_options, tensor,
                   with_last)

__all__ = ["RouterClient", "Routed", "RouterFailed", "InferenceServerException"]
HEARTBEAT_S = 0.5    # asked of the router on gRPC routes: a dead router stub goes silent
DEAD_AFTER_S = 4.0
READY_WAIT_S = 20.0  # a retry waits this long for the router to be ready again


class Routed(RouterAnswer):
    """What the router returned (the contract's RouterAnswer): `text, decision = client.route(...)`
    unpacks; `.audio` is WAV or None; `.visemes` the lip-sync timeline; `.finish_reason` and `.usage`
    as the answering engine reported them."""

    def __iter__(self) -> Iterator[Any]:
        return iter((self.text, self.decision))

    def __getitem__(self, index: int) -> Any:
        return (self.text, self.decision)[index]


@dataclass
class RouterClient:
    """`url` is host:port of Triton's HTTP or gRPC endpoint, as `protocol` says."""

    url: str = "localhost:8000"
    protocol: str = "http"
    headers: dict[str, str] | None = None
    timeout: float = 600.0

    def __post_init__(self) -> None:
        if self.protocol not in ("http", "grpc"):
            raise ValueError(f"protocol: {self.protocol!r} unknown. Available: ['grpc', 'http']")
        self._mod = httpclient if self.protocol == "http" else grpcclient
        if self.protocol == "http":
            self._client = httpclient.InferenceServerClient(self.url, network_timeout=self.timeout,
                                                            connection_timeout=self.timeout)
        else:
            self._client = grpcclient.InferenceServerClient(self.url)
        self._streams = StreamPool(self.url, self.headers) if self.protocol == "grpc" else None

    def close(self) -> None:
        """Close the kept streams and the connection now (idle streams close themselves after a moment)."""
        if self._streams is not None:
            self._streams.close()
        self._client.close()

    # -- health and model control -------------------------------------------------------------
    def live(self) -> bool:
        return self._client.is_server_live(headers=self.headers)

    def ready(self) -> bool:
        return self._client.is_server_ready(headers=self.headers)

    def models(self) -> list[dict[str, str]]:
        """Every model of the repository with its state (READY, UNAVAILABLE, LOADING...)."""
        index = self._client.get_model_repository_index(headers=self.headers)
        if self.protocol == "grpc":
            index = [{"name": m.name, "version": m.version, "state": m.state, "reason": m.reason} for m in index.models]
        return [{"name": m.get("name", ""), "version": m.get("version", ""), "state": m.get("state", ""),
                 "reason": m.get("reason", "")} for m in index]

    def load(self, model: str) -> None:
        self._client.load_model(model, headers=self.headers)

    def unload(self, model: str) -> None:
        self._client.unload_model(model, headers=self.headers)

    def is_ready(self, model: str) -> bool:
        return self._client.is_model_ready(model, headers=self.headers)

    # -- inference ------------------------------------------------------------------------------
    def _inputs(self, inputs: dict[str, Any]) -> list:
        return [tensor(self._mod, k, v) for k, v in inputs.items() if v is not None]

    def infer(self, model: str, inputs: dict[str, Any], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """One request, one response (non-decoupled models, or decoupled models over HTTP)."""
        result = self._client.infer(model, self._inputs(inputs), headers=self.headers,
                                    outputs=[self._mod.InferRequestedOutput(o) for o in outputs] if outputs else None)
        if outputs is None:
            resp = result.get_response()
            outputs = [o["name"] for o in resp["outputs"]] if self.protocol == "http" else [o.name for o in resp.outputs]
        return {n: result.as_numpy(n) for n in outputs}

    def generate(self, model: str, prompt: str, sampling: SamplingParams | dict[str, Any] | None = None,
                 exclude_input: bool = True) -> str:
        """Whole text from a text generator (vLLM contract)."""
        return "".join(self.stream(model, prompt, sampling, exclude_input, stream=False))

    def stream(self, model: str, prompt: str, sampling: SamplingParams | dict[str, Any] | None = None,
               exclude_input: bool = True, stream: bool = True, extra: dict[str, Any] | None = None) -> Iterator[str]:
        """Yield text pieces as the model sends them (gRPC stream, or HTTP generate_stream). Sampling
        parameters given as a dict go as they are: the engine checks them and its error names the field."""
        request = GenerateRequest(prompt, sampling or {}, stream, exclude_input)
        inputs: dict[str, Any] = {**request.encode(), **(extra or {})}
        if self.protocol == "http":
            events = http_events(self.url, model, {k: json_value(v) for k, v in inputs.items()}, stream, self.headers,
                                 self.timeout)
            yield from (GenerateOutput.decode(event_tensors(event)).text for event in events)
            return
        for r in self.stream_responses(model, inputs, request.outputs):
            yield GenerateOutput.decode(r).text

    def stream_responses(self, model: str, inputs: dict[str, Any], outputs: list[str],
                         silence_s: float | None = None) -> Iterator[dict[str, np.ndarray]]:
        """gRPC bidirectional stream for one decoupled request; yields each response's outputs. With
        `silence_s` (the model sends heartbeats), a stream silent that long fails as retryable."""
        for got, _ in self._responses(model, inputs, outputs, silence_s):
            if got:
                yield got

    def _responses(self, model: str, inputs: dict[str, Any], outputs: list[str],
                   silence_s: float | None = None) -> Iterator[tuple[dict[str, np.ndarray], bool]]:
        """Each response's outputs, and whether it is the last (the contract's is_final)."""
        if self.protocol != "grpc":
            raise ValueError("protocol: streaming responses need 'grpc'")
        with self._streams.stream() as stream:
            stream.reuse = False  # until the answer is complete: then kept for the next request
            try:
                stream.client.async_stream_infer(model, self._inputs(inputs), enable_empty_final_response=True,
                                                 outputs=[grpcclient.InferRequestedOutput(o) for o in outputs])
            except InferenceServerException as exc:  # the stream failed (the server went away): retryable
                raise RouterFailed(WireError(ErrorKind.UNAVAILABLE, f"{model}: {exc.message()}", ours=False)) from None
            while True:
                try:
                    result, error = stream.responses.get(timeout=silence_s or self.timeout)
                except queue.Empty:
                    raise RouterFailed(WireError(ErrorKind.UNAVAILABLE, f"{model} stopped answering (no response nor "
                                                 f"heartbeat for {silence_s or self.timeout:.0f} s)", ours=False)) from None
                if error is not None:
                    stream.cancel = False  # its error ended it: closed, not cancelled (streams.py)
                    raise RouterFailed(WireError.parse(error.message() or str(error), error.status()))
                done = is_final(result.get_response().parameters)
                if done:  # complete before the caller sees it: one that stops reading now must not cancel (streams.py)
                    stream.reuse = True
                got = {o: result.as_numpy(o) for o in outputs if result.as_numpy(o) is not None}
                if got or done:
                    yield got, done
                if done:
                    return

    def route(self, text: str, options: RouteOptions | dict[str, Any] | None = None, image: bytes | None = None,
              audio: bytes | None = None, video: bytes | None = None,
              on_piece: Any = None, messages: list[dict[str, str]] | None = None) -> Routed:
        """Send one request through the router; returns its text, routing decision and audio.

        With options {"stream": true}, each piece is passed to `on_piece` as it arrives (gRPC, or
        HTTP generate_stream). Attachments need gRPC (Triton's HTTP generate route takes JSON).
        `messages` is the conversation so far ([{role, content}]); `text`, when not empty, its newest turn.
        """
        attachments = {k: v for k, v in (("image", image), ("audio", audio), ("video", video)) if v is not None}
        if self.protocol == "http" and attachments:
            raise ValueError("attachments: send them over gRPC (protocol='grpc')")
        request = RouterInputs(text, options.wire() if isinstance(options, RouteOptions) else options or {},
                               attachments, messages)
        if self.protocol == "http":
            events = http_events(self.url, router_contract.MODEL, request.as_json(), request.stream, self.headers,
                                 self.timeout)
            # The generate route passes no response parameters: its last event is the last response.
            return self._gather((RouterAnswer.decode(event_tensors(e), last) for e, last in with_last(events)),
                                on_piece)
        request = Heartbeat(HEARTBEAT_S).ask(request)
        delivered: list[str] = []

        def show(piece: str) -> None:
            delivered.append(piece)
            if on_piece:
                on_piece(piece)

        try:
            return self._gather(self._grpc_answers(request), show)
        except RouterFailed as exc:  # work that died before its first piece is tried once more
            if delivered or not exc.retryable:
                raise
            self._wait_ready(router_contract.MODEL)
            return self._gather(self._grpc_answers(request), show)

    def _grpc_answers(self, request: RouterInputs) -> Iterator[RouterAnswer]:
        for out, final in self._responses(router_contract.MODEL, request.encode(), list(router_contract.OUTPUTS),
                                          silence_s=DEAD_AFTER_S):
            yield RouterAnswer.decode(out, final)

    def _wait_ready(self, model: str) -> None:
        """Until the router answers a health check (ahead of its queue): Triton 24.10 still calls a
        router whose stub died READY."""
        probe = RouterInputs("", {"health": True})
        deadline = time.monotonic() + READY_WAIT_S
        while time.monotonic() < deadline:
            try:
                for _ in self.stream_responses(model, probe.encode(), list(router_contract.OUTPUTS), silence_s=2.0):
                    return
            except InferenceServerException:
                time.sleep(0.25)

    @staticmethod
    def _gather(answers: Iterator[RouterAnswer], on_piece: Any) -> Routed:
        pieces: list[str] = []
        final = RouterAnswer()
        for answer in answers:
            if answer.text:
                pieces.append(answer.text)
                if on_piece:
                    on_piece(answer.text)
            if answer.final:
                final = answer
        return Routed("".join(pieces), True, final.decision, final.audio, final.visemes, final.finish_reason,
                      final.usage, final.tool_calls)

    def deep_health(self) -> dict[str, Any]:
        """The router's deep health report: ready, memory, and per managed model its status, health,
        recovery, cool-down, and declared and measured memory (options.health)."""
        return self.route("", {"health": True}).decision

    def cache(self, action: str = "stats", admin_key: str | None = None) -> dict[str, Any]:
        """The response cache's statistics (`stats`) or, `clear`, drop every cached answer; with the
        server's admin key when it has one (options.cache_admin)."""
        return self.route("", route_options(cache_admin=action, admin_key=admin_key or None)).decision

    def feedback(self, decision_id: str, score: float) -> dict[str, Any]:
        """Score an answer the router served, from 0 (useless) to 1 (just right): its decision's `id` and
        the score go to the router's decision log (options.feedback). Returns {decision_id, score,
        recorded}; RouterFailed names the field at fault (an unknown id, a score out of range)."""
        return self.route("", route_options(feedback={"decision_id": decision_id, "score": score})).decision

    def classify(self, text: str | bytes, attachments: list[str] | tuple[str, ...] = (),
                 model: str = classifier_contract.MODEL) -> dict[str, Any]:
        """The query classifier's decision as a dict (use_case, language, ..., confidence)."""
        req = classifier_contract.ClassifyRequest(text, tuple(attachments))
        result = self._client.infer(model, self._inputs(req.encode()), headers=self.headers,
                                    outputs=[self._mod.InferRequestedOutput(o) for o in req.outputs])
        outputs = {name: result.as_numpy(name) for name in req.outputs}
        return classifier_contract.decode_classification(outputs).to_dict()

    def metrics(self, metrics_url: str) -> str:
        with urllib.request.urlopen(f"http://{metrics_url}/metrics", timeout=10) as resp:
            return resp.read().decode()
