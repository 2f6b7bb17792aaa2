"""A small client over tritonclient: health, model control, generation (streaming over gRPC)."""
from __future__ import annotations

import base64
import json
import queue
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

__all__ = ["RouterClient", "Routed", "InferenceServerException"]


def _tensor(module: Any, name: str, value: Any):
    arr = np.array([value], dtype=np.object_ if isinstance(value, (str, bytes)) else None)
    if arr.dtype == np.object_:
        arr = np.array([v.encode("utf-8") if isinstance(v, str) else v for v in arr.reshape(-1)], dtype=np.object_)
    t = module.InferInput(name, list(arr.shape), np_to_triton_dtype(arr.dtype))
    t.set_data_from_numpy(arr)
    return t


class Routed:
    """What the router returned: `text, decision = client.route(...)` unpacks; `.audio` is WAV or
    None; `.visemes` the lip-sync timeline [{start, end, phoneme, viseme}] that goes with it."""

    def __init__(self, text: str, decision: dict[str, Any], audio: bytes | None = None,
                 visemes: list[dict[str, Any]] | None = None) -> None:
        self.text, self.decision, self.audio, self.visemes = text, decision, audio, visemes

    def __iter__(self) -> Iterator[Any]:
        return iter((self.text, self.decision))

    def __getitem__(self, index: int) -> Any:
        return (self.text, self.decision)[index]


def _batched(module: Any, name: str, values: list[str | bytes]):
    """A [1, n] BYTES input for a model with a batch dimension."""
    arr = np.array([[v.encode("utf-8") if isinstance(v, str) else v for v in values]], dtype=np.object_)
    t = module.InferInput(name, list(arr.shape), "BYTES")
    t.set_data_from_numpy(arr)
    return t


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
        return [_tensor(self._mod, k, v) for k, v in inputs.items() if v is not None]

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
        inputs = {"text_input": prompt, "stream": stream, "exclude_input_in_output": exclude_input,
                  "sampling_parameters": json.dumps(sampling or {}), **(extra or {})}
        if self.protocol == "http":
            yield from self._http_generate(model, inputs, stream, output)
            return
        yield from (_text(v) for r in self.stream_responses(model, inputs, [output]) for v in r[output].reshape(-1))

    def _http_generate(self, model: str, inputs: dict[str, Any], stream: bool, output: str) -> Iterator[str]:
        for event in self._http_events(model, inputs, stream):
            if output in event:
                yield _text(event[output])

    def _http_events(self, model: str, inputs: dict[str, Any], stream: bool) -> Iterator[dict[str, Any]]:
        """Triton's generate extension: the one HTTP route that serves decoupled models."""
        route = "generate_stream" if stream else "generate"
        req = urllib.request.Request(f"http://{self.url}/v2/models/{model}/{route}", data=json.dumps(inputs).encode(),
                                     headers={"Content-Type": "application/json", **(self.headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                if not stream:
                    yield json.loads(resp.read())
                    return
                for line in resp:
                    if line.startswith(b"data: "):
                        event = json.loads(line[6:])
                        if "error" in event:
                            raise InferenceServerException(event["error"])
                        yield event
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace").strip().removeprefix("data: ")
            try:
                body = json.loads(body).get("error", body)
            except ValueError:
                pass
            raise InferenceServerException(body, status=str(exc.code)) from None

    def stream_responses(self, model: str, inputs: dict[str, Any], outputs: list[str]) -> Iterator[dict[str, np.ndarray]]:
        """gRPC bidirectional stream for one decoupled request; yields each response's outputs."""
        if self.protocol != "grpc":
            raise ValueError("protocol: streaming responses need 'grpc'")
        results: queue.Queue = queue.Queue()
        client = grpcclient.InferenceServerClient(self.url)
        client.start_stream(callback=lambda result, error: results.put((result, error)), headers=self.headers)
        finished = False
        try:
            client.async_stream_infer(model, self._inputs(inputs), enable_empty_final_response=True,
                                      outputs=[grpcclient.InferRequestedOutput(o) for o in outputs])
            while True:
                result, error = results.get(timeout=self.timeout)
                if error is not None:
                    finished = True
                    raise error
                response = result.get_response()
                final = response.parameters.get("triton_final_response")
                if any(result.as_numpy(o) is not None for o in outputs):
                    yield {o: result.as_numpy(o) for o in outputs if result.as_numpy(o) is not None}
                if final is not None and final.bool_param:
                    finished = True
                    return
        finally:
            # An answer still coming (the caller stopped reading) is cancelled; a complete one is not:
            # a cancellation after the last response races Triton 24.10's gRPC frontend, which then
            # holds the model until the server stops (triton-inference-server/server#8078).
            client.stop_stream(cancel_requests=not finished)
            client.close()

    def route(self, text: str, options: dict[str, Any] | None = None, image: bytes | None = None,
              audio: bytes | None = None, video: bytes | None = None,
              on_piece: Any = None, messages: list[dict[str, str]] | None = None) -> Routed:
        """Send one request through the router; returns its text, routing decision and audio.

        With options {"stream": true}, each piece is passed to `on_piece` as it arrives (gRPC, or
        HTTP generate_stream). Attachments need gRPC (Triton's HTTP generate route takes JSON).
        `messages` is the conversation so far ([{role, content}]); `text`, when not empty, its newest turn.
        """
        inputs: dict[str, Any] = {"text": text, "options": json.dumps(options or {})}
        if messages is not None:
            inputs["messages"] = json.dumps(messages, ensure_ascii=False)
        attachments = {k: v for k, v in (("image", image), ("audio", audio), ("video", video)) if v is not None}
        pieces: list[str] = []
        decision: dict[str, Any] = {}
        audio: bytes | None = None
        visemes: list[dict[str, Any]] | None = None
        if self.protocol == "http":
            if attachments:
                raise ValueError("attachments: send them over gRPC (protocol='grpc')")
            stream = bool((options or {}).get("stream"))
            for event in self._http_events("router", inputs, stream):
                if event.get("text_output"):
                    pieces.append(_text(event["text_output"]))
                    if on_piece:
                        on_piece(pieces[-1])
                if event.get("routing"):
                    decision = json.loads(_text(event["routing"]))
                if event.get("audio"):
                    audio = base64.b64decode(_text(event["audio"]))
                if event.get("visemes"):
                    visemes = json.loads(_text(event["visemes"]))
            return Routed("".join(pieces), decision, audio, visemes)
        inputs.update(attachments)
        for out in self.stream_responses("router", inputs, ["text_output", "routing", "audio", "visemes"]):
            piece = "".join(_text(v) for v in out.get("text_output", np.array([])).reshape(-1))
            if piece:
                pieces.append(piece)
                if on_piece:
                    on_piece(piece)
            if "routing" in out:
                decision = json.loads(_text(out["routing"].reshape(-1)[0]))
            if "audio" in out:
                audio = base64.b64decode(out["audio"].reshape(-1)[0])
            if "visemes" in out:
                visemes = json.loads(_text(out["visemes"].reshape(-1)[0]))
        return Routed("".join(pieces), decision, audio, visemes)

    def deep_health(self) -> dict[str, Any]:
        """The router's deep health report: ready, memory, and per managed model its status, health,
        recovery, cool-down, and declared and measured memory (options.health)."""
        return self.route("", {"health": True}).decision

    def classify(self, text: str | bytes, attachments: list[str] | tuple[str, ...] = (),
                 model: str = "query_classifier") -> dict[str, Any]:
        """The query classifier's decision as a dict (use_case, language, ..., confidence)."""
        inputs = [_batched(self._mod, "text", [text])]
        if attachments:
            inputs.append(_batched(self._mod, "attachments", list(attachments)))
        result = self._client.infer(model, inputs, headers=self.headers,
                                    outputs=[self._mod.InferRequestedOutput("classification")])
        return json.loads(result.as_numpy("classification").reshape(-1)[0])

    def metrics(self, metrics_url: str) -> str:
        with urllib.request.urlopen(f"http://{metrics_url}/metrics", timeout=10) as resp:
            return resp.read().decode()


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
