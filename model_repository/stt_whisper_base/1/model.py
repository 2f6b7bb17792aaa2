"""Triton adapter for model_router.transcribe: audio bytes in, transcript, language and segments out."""
from __future__ import annotations

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

from model_router.errors import InputError
from model_router.text import decode_text
from model_router.transcribe import Transcriber


def _first(request, name: str):
    t = pb_utils.get_input_tensor_by_name(request, name)
    return None if t is None else t.as_numpy().reshape(-1)[0]


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = json.loads(args["model_config"]).get("parameters", {})
        path = os.path.expandvars(params.get("model_path", {}).get("string_value", ""))
        if not os.path.isfile(os.path.join(path, "model.bin")):
            raise pb_utils.TritonModelException(f"stt_whisper_base: no model.bin under model_path={path!r}")
        self.transcriber = Transcriber(path, threads=int(params.get("threads", {}).get("string_value", "2")))

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        try:
            audio = _first(request, "audio")
            hint = decode_text(_first(request, "language") or b"", 16, "language").strip() or None
            result = self.transcriber.transcribe(audio, hint)
        except InputError as exc:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG))
        except Exception as exc:  # this request fails; the model keeps serving
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(f"stt_whisper_base: {exc}"))
        out = {"text_output": result.text, "language": result.language, "segments": json.dumps(result.segments)}
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor(k, np.array([v.encode("utf-8")], dtype=np.object_)) for k, v in out.items()])
