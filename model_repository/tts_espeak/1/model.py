"""Triton adapter for model_router.media.speech: text (+ language) in; WAV bytes and a viseme timeline out."""
from __future__ import annotations

import ctypes.util

import triton_python_backend_utils as pb_utils

from model_router.contract.media import SpeechOutput, SpeechRequest
from model_router.media.speech import MAX_SPEECH_CHARS, synthesize
from model_router.triton.adapter import RequestModel, getter, response


class TritonPythonModel(RequestModel):
    name = "tts_espeak"

    def initialize(self, args: dict) -> None:
        if ctypes.util.find_library("espeak-ng") is None:
            raise pb_utils.TritonModelException("tts_espeak: libespeak-ng is not installed (scripts/setup.sh installs it)")

    def answer(self, request):
        req = SpeechRequest.decode(getter(request), MAX_SPEECH_CHARS)
        speech = synthesize(req.text, req.language)
        return response(SpeechOutput(speech.wav, speech.sample_rate, speech.visemes).encode())
