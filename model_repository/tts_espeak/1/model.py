"""Triton adapter for model_router.media.speech: text (+ language) in; WAV bytes and a viseme timeline out."""
from __future__ import annotations

import ctypes.util
import json

import numpy as np
import triton_python_backend_utils as pb_utils

from model_router.media.speech import MAX_SPEECH_CHARS, synthesize
from model_router.triton.adapter import RequestModel, first_text, strings


class TritonPythonModel(RequestModel):
    name = "tts_espeak"

    def initialize(self, args: dict) -> None:
        if ctypes.util.find_library("espeak-ng") is None:
            raise pb_utils.TritonModelException("tts_espeak: libespeak-ng is not installed (scripts/setup.sh installs it)")

    def answer(self, request):
        text = first_text(request, "text", MAX_SPEECH_CHARS)
        speech = synthesize(text, first_text(request, "language", 16, b"en"))
        return pb_utils.InferenceResponse(output_tensors=[
            strings("audio", [speech.wav]),
            pb_utils.Tensor("sample_rate", np.array([speech.sample_rate], dtype=np.int32)),
            strings("visemes", [json.dumps(speech.visemes)])])
