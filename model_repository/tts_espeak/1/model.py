"""Triton adapter for model_router.speech: text (+ language) in, WAV bytes out."""
from __future__ import annotations

import io
import shutil
import wave

import numpy as np
import triton_python_backend_utils as pb_utils

from model_router.errors import InputError
from model_router.speech import synthesize
from model_router.text import decode_text


def _first(request, name: str):
    t = pb_utils.get_input_tensor_by_name(request, name)
    return None if t is None else t.as_numpy().reshape(-1)[0]


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        if shutil.which("espeak-ng") is None:
            raise pb_utils.TritonModelException("tts_espeak: espeak-ng is not installed (scripts/setup.sh installs it)")

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        try:
            text = decode_text(_first(request, "text"), 2000)
            language = decode_text(_first(request, "language") or b"en", 16, "language")
            wav = synthesize(text, language)
        except InputError as exc:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG))
        except Exception as exc:  # espeak-ng failed: this request fails, the model stays up
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(f"tts_espeak: {exc}"))
        rate = wave.open(io.BytesIO(wav)).getframerate()
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("audio", np.array([wav], dtype=np.object_)),
            pb_utils.Tensor("sample_rate", np.array([rate], dtype=np.int32))])
