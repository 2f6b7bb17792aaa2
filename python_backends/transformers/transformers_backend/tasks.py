"""One class per task of the transformers backend, each reading its inputs, running its engine and
building its responses. The backend picks the class once, from the config's `task`.
"""
from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from model_router.errors import InputError
from model_router.request import decode_text, parse_messages
from model_router.sampling import parse_sampling_parameters
from model_router.triton.adapter import FINAL, RequestModel, error_response, first, first_text, param, respond, strings
from model_router.triton.metrics import GenerationMetrics

MAX_PROMPT_CHARS = 1 << 20


class Task(RequestModel):
    """A task: `decoupled` says whether it streams (its config must agree); the others answer each
    request once (`answer`)."""

    decoupled = False

    def __init__(self, name: str, model_path: str, device: str, config: dict[str, Any]) -> None:
        self.name = name

    def finalize(self) -> None:
        pass


class SpeechRecognitionTask(Task):
    """audio (+ language) -> text_output, language, segments."""

    def __init__(self, name: str, model_path: str, device: str, config: dict[str, Any]) -> None:
        super().__init__(name, model_path, device, config)
        from .speech_recognition import SpeechRecognizer

        self.engine = SpeechRecognizer(model_path, device, param(config, "dtype", "float32"))

    def answer(self, request: Any) -> Any:
        hint = first_text(request, "language", 16).strip() or None
        audio = first(request, "audio")
        t = self.engine.transcribe(bytes(audio) if audio is not None else b"", hint)
        return respond({"text_output": t.text, "language": t.language, "segments": json.dumps(t.segments)})


class TextToSpeechTask(Task):
    """text -> audio (WAV), sample_rate, visemes ("[]": no phoneme timing)."""

    def __init__(self, name: str, model_path: str, device: str, config: dict[str, Any]) -> None:
        super().__init__(name, model_path, device, config)
        from .text_to_speech import Synthesizer

        self.engine = Synthesizer(model_path, device, param(config, "dtype", "float32"))

    def answer(self, request: Any) -> Any:
        text = first_text(request, "text", 2000).strip()
        if not text:
            raise InputError("text", "nothing to say")
        wav, rate = self.engine.synthesize(text)
        return pb_utils.InferenceResponse(output_tensors=[
            strings("audio", [wav]), pb_utils.Tensor("sample_rate", np.array([rate], dtype=np.int32)),
            strings("visemes", [b"[]"])])


class TextGenerationTask(Task):
    """The vLLM backend's contract (decoupled): text_input, stream, sampling_parameters,
    exclude_input_in_output -> text_output; and optionally `messages`, a conversation (JSON turns,
    the last the user's) that the chat template renders instead of text_input alone. execute() only
    checks and queues; requests are generated
    together, continuously batched (batching.py), and each answers on its own response sender."""

    decoupled = True

    def __init__(self, name: str, model_path: str, device: str, config: dict[str, Any]) -> None:
        super().__init__(name, model_path, device, config)
        from .batching import BatchEvents
        from .text_generation import TextGenerator

        self.metrics = GenerationMetrics(pb_utils, name)
        self.outbox = Outbox()
        self.cancels = Cancels()
        self.engine = TextGenerator(
            model_path, device=device, threads=int(param(config, "threads", "0") or 0),
            use_chat_template=param(config, "chat_template", "true").lower() == "true",
            max_input_tokens=int(param(config, "max_input_tokens", "2048")), dtype=param(config, "dtype", "float32"),
            max_batch_size=int(param(config, "max_batch_size", "8")),
            max_batch_tokens=int(param(config, "max_batch_tokens", "16384")),
            gather_s=float(param(config, "gather_ms", "0")) / 1000,
            events=BatchEvents(step=self.metrics.step, ended=self.metrics.ended))
        self.max_tokens_limit = int(param(config, "max_tokens_limit", "1024"))

    def execute(self, requests: list) -> None:
        for request in requests:
            sender = request.get_response_sender()
            try:  # a request that cannot be served fails here, alone, before it joins a batch
                if self.cancels.ask(request):
                    sender.send(flags=FINAL)
                    continue
                prompt, turns, params, sink = self._read(request, sender)
                self.engine.submit(prompt, params, sink, self.cancels.check(request), turns)
            except Exception as exc:
                sender.send(error_response(exc, self.name), flags=FINAL)
        return None

    def _read(self, request: Any, sender: Any) -> tuple[str, list[dict[str, str]], Any, _Answer]:
        raw = first(request, "text_input")
        if raw is None:
            raise InputError("text_input", "required")
        prompt = decode_text(raw, MAX_PROMPT_CHARS, "text_input")  # the token limit is checked on encoding
        if not prompt.strip():
            raise InputError("text_input", "empty")
        params = parse_sampling_parameters(first(request, "sampling_parameters"), self.max_tokens_limit)
        turns = [m.model_dump() for m in parse_messages(first(request, "messages"))]  # a conversation, if sent
        stream = bool(first(request, "stream", False))
        prefix = "" if stream or bool(first(request, "exclude_input_in_output", False)) else prompt
        return prompt, turns, params, _Answer(self.name, self.outbox, sender, request.is_cancelled, stream, prefix)

    def finalize(self) -> None:
        self.engine.close()
        self.outbox.close()
        self.metrics.close()


class Cancels:
    """Requests cancelled by id: the router's way to stop a BLS request on Triton releases whose BLS
    response iterator cannot cancel (24.10). A request whose parameters hold {"tmr_cancel": <id>}
    cancels the request of that id (whether it runs, waits, or has not arrived yet)."""

    KEEP_S = 600.0  # an id asked for before its request arrives is remembered this long

    def __init__(self) -> None:
        self._ids: dict[str, float] = {}
        self._lock = threading.Lock()

    def ask(self, request: Any) -> bool:
        """True when `request` is a cancellation (recorded), not a prompt."""
        target = json.loads(request.parameters() or "{}").get("tmr_cancel")
        if not target:
            return False
        now = time.monotonic()
        with self._lock:
            self._ids = {i: t for i, t in self._ids.items() if now - t < self.KEEP_S}
            self._ids[str(target)] = now
        return True

    def check(self, request: Any) -> Any:
        """The cancellation check of `request`: its client's, or a cancellation by its id."""
        request_id = request.request_id()
        return lambda: request.is_cancelled() or (bool(request_id) and request_id in self._ids)


class _Answer:
    """One request's responses: each piece as it comes when streaming, else the whole text at the end."""

    def __init__(self, model: str, outbox: Outbox, sender: Any, is_cancelled: Any, stream: bool, prefix: str) -> None:
        self.model, self.outbox, self.sender, self.is_cancelled, self.stream = model, outbox, sender, is_cancelled, stream
        self.parts = [prefix] if prefix else []

    def piece(self, text: str) -> None:
        if self.stream:
            self._send(respond({"text_output": text}))
        else:
            self.parts.append(text)

    def end(self, error: BaseException | None = None) -> None:
        if error is not None:
            self._send(error_response(error, self.model), FINAL)
        elif self.is_cancelled():
            self._send(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                "request cancelled", pb_utils.TritonError.CANCELLED)), FINAL)
        elif self.stream:
            self._send(None, FINAL)
        else:
            self._send(respond({"text_output": "".join(self.parts)}), FINAL)

    def _send(self, response: Any, flags: int = 0) -> None:
        self.outbox.put((self.model, self.sender, response, flags))


class Outbox:
    """Sends responses on a thread of its own, in order, so that the batch's next step need not wait
    for each send's round trip to the server (the vLLM backend's response loop does the same)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="responses", daemon=True)
        self._thread.start()

    def put(self, item: tuple) -> None:
        self._queue.put(item)

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            model, sender, response, flags = item
            try:
                if response is None:
                    sender.send(flags=flags)
                else:
                    sender.send(response, flags=flags)
            except Exception as exc:  # the client is gone: nothing to tell it, and the batch goes on
                pb_utils.Logger.log_warn(f"{model}: could not send a response: {exc}")

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)


TASKS: dict[str, type[Task]] = {"text-generation": TextGenerationTask,
                                "automatic-speech-recognition": SpeechRecognitionTask,
                                "text-to-speech": TextToSpeechTask}
