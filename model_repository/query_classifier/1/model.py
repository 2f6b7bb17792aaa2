"""Triton adapter for model_router.classifier: tensors in, Classification out, errors per request."""
from __future__ import annotations

import json

import triton_python_backend_utils as pb_utils

from model_router.classifier import QueryClassifier
from model_router.contract.classifier import ClassifyRequest, encode_classifications
from model_router.triton.adapter import RequestModel, getter, param, response


class TritonPythonModel(RequestModel):
    name = "query_classifier"

    def initialize(self, args: dict) -> None:
        max_chars = int(param(json.loads(args["model_config"]), "max_text_chars", "8000"))
        self.classifier = QueryClassifier(max_chars=max_chars)
        self.classifier.classify("warm up", ())  # first call pays the embedding model's set-up
        pb_utils.Logger.log_info(f"query_classifier: ready (max_text_chars={max_chars})")

    def answer(self, request):
        rows = ClassifyRequest.decode_batch(getter(request))
        return response(encode_classifications([self.classifier.classify(text, kinds) for text, kinds in rows]))
