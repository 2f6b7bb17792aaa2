"""One class per task of the transformers backend, each reading its inputs, running its engine and
building its responses. The backend picks the class once, from the config's `task`.
"""
from __future__ import annotations

import json
import queue
import threading
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from model_router.errors import InputError
from model_router.request import decode_text
from model_router.sampling import parse_sampling_parameters
from model_router.triton.adapter import FINAL, RequestModel, error_response, first, first_text, param, respond, strings

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
    exclude_input_in_output -> text_output. Generation runs on a worker so that execute returns at once."""

    decoupled = True

    def __init__(self, name: str, model_path: str, device: str, config: dict[str, Any]) -> None:
        super().__init__(name, model_path, device, config)
        from .text_generation import TextGenerator

        self.engine = TextGenerator(
            model_path, device=device, threads=int(param(config, "threads", "0") or 0),
            use_chat_template=param(config, "chat_template", "true").lower() == "true",
            max_input_tokens=int(param(config, "max_input_tokens", "2048")), dtype=param(config, "dtype", "float32"))
        self.max_tokens_limit = int(param(config, "max_tokens_limit", "1024"))
        self._requests: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._serve_loop, name=f"{name}-worker", daemon=True)
        self._worker.start()

    def execute(self, requests: list) -> None:
        # Only schedule; the router's admission limits bound how many wait here.
        for request in requests:
            self._requests.put(request)
        return None

    def _serve_loop(self) -> None:
        while (request := self._requests.get()) is not None:
            sender = request.get_response_sender()
            try:
                self._generate(request, sender)
            except Exception as exc:  # a broken request must not stop the worker
                sender.send(error_response(exc, self.name), flags=FINAL)

    def _generate(self, request: Any, sender: Any) -> None:
        raw = first(request, "text_input")
        if raw is None:
            raise InputError("text_input", "required")
        prompt = decode_text(raw, MAX_PROMPT_CHARS, "text_input")  # the token limit is checked on encoding
        if not prompt.strip():
            raise InputError("text_input", "empty")
        stream = bool(first(request, "stream", False))
        exclude = bool(first(request, "exclude_input_in_output", False))
        params = parse_sampling_parameters(first(request, "sampling_parameters"), self.max_tokens_limit)
        pieces = self.engine.generate(prompt, params, is_cancelled=request.is_cancelled)
        if stream:
            for piece in pieces:
                if request.is_cancelled():
                    break
                sender.send(respond({"text_output": piece}))
            sender.send(flags=FINAL)
        else:
            text = "".join(pieces)
            sender.send(respond({"text_output": text if exclude else prompt + text}), flags=FINAL)

    def finalize(self) -> None:
        self._requests.put(None)
        self._worker.join(timeout=30)


TASKS: dict[str, type[Task]] = {"text-generation": TextGenerationTask,
                                "automatic-speech-recognition": SpeechRecognitionTask,
                                "text-to-speech": TextToSpeechTask}
