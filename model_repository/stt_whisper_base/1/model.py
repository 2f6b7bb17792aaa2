"""Triton adapter for model_router.media.transcribe: audio bytes in, transcript, language and segments out."""
from __future__ import annotations

import json
import os

import triton_python_backend_utils as pb_utils

from model_router.contract.media import TranscriptionOutput, TranscriptionRequest
from model_router.media.transcribe import Transcriber
from model_router.triton.adapter import RequestModel, getter, param, response


class TritonPythonModel(RequestModel):
    name = "stt_whisper_base"

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        path = param(config, "model_path")
        if not os.path.isfile(os.path.join(path, "model.bin")):
            raise pb_utils.TritonModelException(f"stt_whisper_base: no model.bin under model_path={path!r}")
        self.transcriber = Transcriber(path, threads=int(param(config, "threads", "2")))

    def answer(self, request):
        req = TranscriptionRequest.decode(getter(request))
        result = self.transcriber.transcribe(req.audio, req.language or None)
        return response(TranscriptionOutput(result.text, result.language, result.segments).encode())
