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
from model_router.contract.errors import ErrorKind, WireError
from model_router.contract.generation import GenerateOutput, GenerateRequest
from model_router.contract.router import RouterAnswer, RouterRequest

from .streams import StreamPool
from .wire import RouterFailed, event_tensors, http_events, json_value, tensor, text_of

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

    def generate(self, model: str, prompt: str, sampling: dict[str, Any] | None = None,
                 exclude_input: bool = True) -> str:
        """Whole text from a text generator (vLLM contract)."""
        return "".join(self.stream(model, prompt, sampling, exclude_input, stream=False))

    def stream(self, model: str, prompt: str, sampling: dict[str, Any] | None = None,
               exclude_input: bool = True, stream: bool = True, extra: dict[str, Any] | None = None,
               output: str = "text_output") -> Iterator[str]:
        """Yield text pieces as the model sends them (gRPC stream, or HTTP generate_stream)."""
        inputs: dict[str, Any] = {**GenerateRequest(prompt, sampling or {}, stream, exclude_input).encode(),
                                  **(extra or {})}
        if self.protocol == "http":
            inputs = {k: json_value(v) for k, v in inputs.items()}
            yield from self._http_generate(model, inputs, stream, output)
            return
        for r in self.stream_responses(model, inputs, [output]):
            yield GenerateOutput.decode(r).text if output == "text_output" else "".join(text_of(v) for v in r[output].reshape(-1))

    def _http_generate(self, model: str, inputs: dict[str, Any], stream: bool, output: str) -> Iterator[str]:
        for event in http_events(self.url, model, inputs, stream, self.headers, self.timeout):
            if output in event:
                yield text_of(event[output])

    def stream_responses(self, model: str, inputs: dict[str, Any], outputs: list[str],
                         silence_s: float | None = None) -> Iterator[dict[str, np.ndarray]]:
        """gRPC bidirectional stream for one decoupled request; yields each response's outputs. With
        `silence_s` (the model sends heartbeats), a stream silent that long fails as retryable."""
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
                final = result.get_response().parameters.get("triton_final_response")
                done = final is not None and final.bool_param
                if done:  # complete before the caller sees it: one that stops reading now must not cancel (streams.py)
                    stream.reuse = True
                if any(result.as_numpy(o) is not None for o in outputs):
                    yield {o: result.as_numpy(o) for o in outputs if result.as_numpy(o) is not None}
                if done:
                    return

    def route(self, text: str, options: dict[str, Any] | None = None, image: bytes | None = None,
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
        if self.protocol == "http":
            request = RouterRequest(text, options or {}, attachments, messages)
            answers = (RouterAnswer.decode(event_tensors(e), "routing" in e)
                       for e in http_events(self.url, router_contract.MODEL, request.as_json(), request.stream,
                                              self.headers, self.timeout))
            return self._gather(answers, on_piece)
        request = RouterRequest(text, {**(options or {}), "heartbeat_s": HEARTBEAT_S}, attachments, messages)
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

    def _grpc_answers(self, request: RouterRequest) -> Iterator[RouterAnswer]:
        for out in self.stream_responses(router_contract.MODEL, request.encode(), list(router_contract.OUTPUTS),
                                         silence_s=DEAD_AFTER_S):
            yield RouterAnswer.decode(out, "routing" in out)

    def _wait_ready(self, model: str) -> None:
        """Until the router answers a health check (ahead of its queue): Triton 24.10 still calls a
        router whose stub died READY."""
        probe = RouterRequest("", {"health": True})
        deadline = time.monotonic() + READY_WAIT_S
        while time.monotonic() < deadline:
            try:
                for _ in self.stream_responses(model, probe.encode(), ["routing"], silence_s=2.0):
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
        options: dict[str, Any] = {"cache_admin": action}
        if admin_key:
            options["admin_key"] = admin_key
        return self.route("", options).decision

    def classify(self, text: str | bytes, attachments: list[str] | tuple[str, ...] = (),
                 model: str = classifier_contract.MODEL) -> dict[str, Any]:
        """The query classifier's decision as a dict (use_case, language, ..., confidence)."""
        req = classifier_contract.ClassifyRequest(text, tuple(attachments))
        result = self._client.infer(model, self._inputs(req.encode()), headers=self.headers,
                                    outputs=[self._mod.InferRequestedOutput(o) for o in req.outputs])
        return classifier_contract.decode_classification({"classification": result.as_numpy("classification")}).to_dict()

    def metrics(self, metrics_url: str) -> str:
        with urllib.request.urlopen(f"http://{metrics_url}/metrics", timeout=10) as resp:
            return resp.read().decode()
