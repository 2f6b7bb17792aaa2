"""Triton adapter for model_router.media.transcribe: audio bytes in, transcript, language and segments out."""
from __future__ import annotations

import json
import os

import triton_python_backend_utils as pb_utils

from model_router.media.transcribe import Transcriber
from model_router.triton.adapter import RequestModel, first, first_text, param, respond


class TritonPythonModel(RequestModel):
    name = "stt_whisper_base"

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        path = param(config, "model_path")
        if not os.path.isfile(os.path.join(path, "model.bin")):
            raise pb_utils.TritonModelException(f"stt_whisper_base: no model.bin under model_path={path!r}")
        self.transcriber = Transcriber(path, threads=int(param(config, "threads", "2")))

    def answer(self, request):
        hint = first_text(request, "language", 16).strip() or None
        result = self.transcriber.transcribe(first(request, "audio"), hint)
        return respond({"text_output": result.text, "language": result.language,
                        "segments": json.dumps(result.segments)})
