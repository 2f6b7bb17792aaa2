"""One class per task of the transformers backend, each reading its inputs, running its engine and
building its responses. The backend picks the class once, from the config's `task`.
"""
from __future__ import annotations

import threading
import time
from typing import Any

import triton_python_backend_utils as pb_utils

from model_router.contract.control import Cancel
from model_router.contract.generation import GenerateOutput, GenerateRequest
from model_router.contract.media import (MAX_SPEECH_CHARS, SpeechOutput, SpeechRequest, TranscriptionOutput,
                                        TranscriptionRequest)
from model_router.errors import Cancelled, InputError
from model_router.triton.adapter import FINAL, RequestModel, error_response, getter, response
from model_router.triton.metrics import GenerationMetrics

from .outbox import Outbox
from .settings import BackendSettings

MAX_PROMPT_CHARS = 1 << 20  # the token limit (max_input_tokens) is checked on encoding


class Task(RequestModel):
    """A task: `decoupled` says whether it streams (its config must agree); the others answer each
    request once (`answer`)."""

    decoupled = False

    def __init__(self, name: str, model_path: str, settings: BackendSettings) -> None:
        self.name = name

    def finalize(self) -> None:
        pass


class SpeechRecognitionTask(Task):
    """audio (+ language) -> text_output, language, segments (contract.media.Transcription*)."""

    def __init__(self, name: str, model_path: str, settings: BackendSettings) -> None:
        super().__init__(name, model_path, settings)
        from .speech_recognition import SpeechRecognizer

        self.engine = SpeechRecognizer(model_path, settings.device, settings.dtype)

    def answer(self, request: Any) -> Any:
        req = TranscriptionRequest.decode(getter(request))
        t = self.engine.transcribe(req.audio, req.language or None)
        return response(TranscriptionOutput(t.text, t.language, t.segments).encode())


class TextToSpeechTask(Task):
    """text -> audio (WAV), sample_rate, visemes ([]: no phoneme timing) (contract.media.Speech*)."""

    def __init__(self, name: str, model_path: str, settings: BackendSettings) -> None:
        super().__init__(name, model_path, settings)
        from .text_to_speech import Synthesizer

        self.engine = Synthesizer(model_path, settings.device, settings.dtype)

    def answer(self, request: Any) -> Any:
        text = SpeechRequest.decode(getter(request), MAX_SPEECH_CHARS).text.strip()
        if not text:
            raise InputError("text", "nothing to say")
        wav, rate = self.engine.synthesize(text)
        return response(SpeechOutput(wav, rate).encode())


class TextGenerationTask(Task):
    """The vLLM backend's contract (contract.generation, decoupled), with its additional outputs
    (finish_reason, num_input_tokens, num_output_tokens, cumulative_logprob) and our `messages`, a
    conversation the chat template renders instead of text_input alone. execute() only checks and
    queues; requests are generated together, continuously batched (batching.py), and each answers
    on its own response sender."""

    decoupled = True

    def __init__(self, name: str, model_path: str, settings: BackendSettings) -> None:
        super().__init__(name, model_path, settings)
        from .batching import BatchEvents

        self.metrics = GenerationMetrics(pb_utils, name)
        self.outbox = Outbox(warn=pb_utils.Logger.log_warn)
        self.cancels = Cancels()
        self.engine = self.make_engine(model_path, settings, BatchEvents(step=self.metrics.step,
                                                                          ended=self.metrics.ended))
        self.limits = settings.limits

    @staticmethod
    def make_engine(model_path: str, settings: BackendSettings, events: Any) -> Any:
        """The text generator: prompts (or conversations) in, pieces out to each request's sink."""
        from .text_generation import TextGenerator

        return TextGenerator(
            model_path, device=settings.device, threads=settings.threads, use_chat_template=settings.chat_template,
            max_input_tokens=settings.max_input_tokens, dtype=settings.dtype, max_batch_size=settings.max_batch_size,
            max_batch_tokens=settings.max_batch_tokens, gather_s=settings.gather_s,
            stream_interval=settings.stream_interval, busy_rows=settings.stream_interval_rows, events=events)

    def execute(self, requests: list) -> None:
        for request in requests:
            sender = request.get_response_sender()
            try:  # a request that cannot be served fails here, alone, before it joins a batch
                if self.cancels.ask(request):
                    sender.send(flags=FINAL)
                    continue
                self._submit(request, sender)
            except Exception as exc:
                sender.send(error_response(exc, self.name), flags=FINAL)
        return None

    def _submit(self, request: Any, sender: Any) -> None:
        req = GenerateRequest.decode(getter(request), MAX_PROMPT_CHARS, self.limits)
        prefix = "" if req.stream or req.exclude_input_in_output else req.prompt
        answer = _Answer(self.name, self.outbox, sender, request.is_cancelled, req, prefix)
        cancelled = self.cancels.check(request)
        self.engine.submit(req.prompt, req.sampling, answer, lambda: cancelled() or self.outbox.gave_up(sender), req.messages,
                           want_logprob=req.wants_logprob, tools=req.tools)

    def finalize(self) -> None:
        self.engine.close()
        self.outbox.close()
        self.metrics.close()


class Cancels:
    """Requests cancelled by id: the router's way to stop a BLS request on Triton releases whose BLS
    response iterator cannot cancel (24.10). A request that carries the contract's Cancel cancels the
    request of its id (whether it runs, waits, or has not arrived yet)."""

    KEEP_S = 600.0  # an id asked for before its request arrives is remembered this long

    def __init__(self) -> None:
        self._ids: dict[str, float] = {}
        self._lock = threading.Lock()

    def ask(self, request: Any) -> bool:
        """True when `request` is a cancellation (recorded), not a prompt."""
        cancel = Cancel.decode(request.parameters())
        if cancel is None:
            return False
        now = time.monotonic()
        with self._lock:
            self._ids = {i: t for i, t in self._ids.items() if now - t < self.KEEP_S}
            self._ids[cancel.request_id] = now
        return True

    def check(self, request: Any) -> Any:
        """The cancellation check of `request`: its client's, or a cancellation by its id."""
        request_id = request.request_id()
        return lambda: request.is_cancelled() or (bool(request_id) and request_id in self._ids)


class _Answer:
    """One request's responses: each piece as it comes when streaming, else the whole text at the end.
    The additional outputs it asked for ride on every response, output tokens counted per response."""

    def __init__(self, model: str, outbox: Outbox, sender: Any, is_cancelled: Any, request: GenerateRequest,
                 prefix: str) -> None:
        self.model, self.outbox, self.sender, self.is_cancelled = model, outbox, sender, is_cancelled
        self.stream, self.returns = request.stream, request.returns
        self.parts = [prefix] if prefix else []
        self.tokens = 0  # not streaming: the tokens of every piece so far

    def piece(self, out: GenerateOutput) -> None:
        if self.stream:
            self._send(response(out.encode(self.returns)))
        else:
            self.parts.append(out.text)
            self.tokens += out.num_output_tokens or 0

    def end(self, out: GenerateOutput, error: BaseException | None = None) -> None:
        if error is None and self.is_cancelled():
            error = Cancelled(self.model)
        if error is not None:
            self._send(error_response(error, self.model), FINAL)
        elif self.stream and not self.returns:
            self._send(None, FINAL)  # nothing more to say: the empty final response
        elif self.stream:
            self._send(response(out.encode(self.returns)), FINAL)
        else:
            whole = GenerateOutput("".join(self.parts) + out.text, out.finish_reason, out.num_input_tokens,
                                   self.tokens + (out.num_output_tokens or 0), out.cumulative_logprob)
            self._send(response(whole.encode(self.returns)), FINAL)

    def _send(self, response: Any, flags: int = 0) -> None:
        self.outbox.put((self.model, self.sender, response, flags))


TASKS: dict[str, type[Task]] = {"text-generation": TextGenerationTask,
                                "automatic-speech-recognition": SpeechRecognitionTask,
                                "text-to-speech": TextToSpeechTask}
