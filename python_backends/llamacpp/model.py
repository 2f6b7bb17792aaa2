"""Triton Python-based backend "llamacpp": serves a GGUF model with llama.cpp (llama-cpp-python).

A model folder needs a config.pbtxt with `backend: "llamacpp"` and a `model_path` parameter (a
.gguf file). It speaks the vLLM backend's contract, as our transformers backend does, and shares its
continuous batching, sampling, stop strings, structured outputs and cancellation
(transformers_backend); conversations are rendered with the chat template in the GGUF file, tools
included. Every parameter it reads, its type and default: transformers_backend/settings.py
(text-generation only; `dtype` and `device` do not apply: llama.cpp runs the file's quantization
on the CPU).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import triton_python_backend_utils as pb_utils

# The transformers backend's package, from the backend folder beside this one (python_backends/ in the
# tree, Triton's backends/ in an image): the two always come from the same tree.
sys.path.insert(1, str(Path(__file__).parent.parent / "transformers"))

from llamacpp_backend.gguf import ModelFileError  # noqa: E402
from transformers_backend.backend import Backend  # noqa: E402
from transformers_backend.settings import BackendSettings  # noqa: E402
from transformers_backend.tasks import TextGenerationTask  # noqa: E402


class LlamaTextGenerationTask(TextGenerationTask):
    @staticmethod
    def make_engine(model_path: str, settings: BackendSettings, events: Any) -> Any:
        from llamacpp_backend.text_generation import LlamaTextGenerator

        try:
            return LlamaTextGenerator(
                model_path, threads=settings.threads, use_chat_template=settings.chat_template,
                max_input_tokens=settings.max_input_tokens, max_batch_size=settings.max_batch_size,
                max_batch_tokens=settings.max_batch_tokens, gather_s=settings.gather_s, events=events,
                stream_interval=settings.stream_interval, busy_rows=settings.stream_interval_rows)
        except ModelFileError as exc:
            raise pb_utils.TritonModelException(f"parameter model_path: {exc}") from None


class TritonPythonModel(Backend):
    tasks = {"text-generation": LlamaTextGenerationTask}

    def _model_path(self, name: str, settings: BackendSettings) -> str:
        if not os.path.isfile(settings.model_path):
            raise pb_utils.TritonModelException(f"{name}: parameter model_path={settings.model_path!r} is not a file "
                                                "(a .gguf model; scripts/prepare_models.py prepares ours)")
        return settings.model_path
