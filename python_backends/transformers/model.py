"""Triton Python-based backend "transformers": serves a Hugging Face model named in config.pbtxt.

A model folder needs a config.pbtxt with `backend: "transformers"`, a `model_path` parameter (a
directory, or a hub id found in the local Hugging Face cache: nothing is downloaded) and a `task`
(transformers_backend.tasks.TASKS: text-generation, automatic-speech-recognition, text-to-speech).
Parameter `device` (cpu, cuda) follows the instance kind unless set; every parameter the backend
reads, its type and default: transformers_backend/settings.py.
"""
from __future__ import annotations

import os

import triton_python_backend_utils as pb_utils

from transformers_backend.backend import Backend
from transformers_backend.settings import BackendSettings
from transformers_backend.tasks import TASKS


def _resolve(model_path: str) -> str:
    """A directory as it is; a hub id ("openai/whisper-large-v3") from the local cache only."""
    if os.path.isdir(model_path):
        return model_path
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(model_path, local_files_only=True)
    except Exception:
        return ""


class TritonPythonModel(Backend):
    tasks = TASKS

    def _model_path(self, name: str, settings: BackendSettings) -> str:
        resolved = _resolve(settings.model_path)
        if not resolved:
            raise pb_utils.TritonModelException(f"{name}: parameter model_path={settings.model_path!r} is neither "
                                                "a directory nor in the local Hugging Face cache")
        return resolved
