"""Triton adapter for model_router.speech: text (+ language) in; WAV bytes and a viseme timeline out."""
from __future__ import annotations

import ctypes.util
import json

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
        if ctypes.util.find_library("espeak-ng") is None:
            raise pb_utils.TritonModelException("tts_espeak: libespeak-ng is not installed (scripts/setup.sh installs it)")

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        try:
            text = decode_text(_first(request, "text"), 2000)
            language = decode_text(_first(request, "language") or b"en", 16, "language")
            speech = synthesize(text, language)
        except InputError as exc:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG))
        except Exception as exc:  # espeak-ng failed: this request fails, the model stays up
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(f"tts_espeak: {exc}"))
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("audio", np.array([speech.wav], dtype=np.object_)),
            pb_utils.Tensor("sample_rate", np.array([speech.sample_rate], dtype=np.int32)),
            pb_utils.Tensor("visemes", np.array([json.dumps(speech.visemes).encode()], dtype=np.object_))])
