"""Triton adapter for model_router.e5: the requests waiting, embedded in one batch; errors per request."""
from __future__ import annotations

import json

import triton_python_backend_utils as pb_utils

from model_router import e5
from model_router.contract.embedding import EmbedOutput, EmbedRequest
from model_router.triton.adapter import RequestModel, error_response, getter, param, response


class TritonPythonModel(RequestModel):
    name = "multilingual_e5_small"

    def initialize(self, args: dict) -> None:
        threads = int(param(json.loads(args["model_config"]), "threads", "2"))
        self.model = e5.load(threads)
        e5.embed(self.model, ["warm up"])  # the first call pays the engine's set-up
        pb_utils.Logger.log_info(f"{self.name}: ready ({self.model.dim} dimensions, {threads} threads)")

    def execute(self, requests: list) -> list:
        asked = [self._read(request) for request in requests]
        try:
            answers = e5.embed_requests(self.model, asked)
        except Exception as exc:  # the encoder failed: every request hears of it, the model serves on
            answers = [exc] * len(asked)
        return [response(a.encode()) if isinstance(a, EmbedOutput) else error_response(a, self.name) for a in answers]

    @staticmethod
    def _read(request) -> EmbedRequest | Exception:
        try:
            return EmbedRequest.decode(getter(request))
        except Exception as exc:
            return exc
