"""Triton adapter for model_router.classifier: tensors in, Classification out, errors per request."""
from __future__ import annotations

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from model_router.classifier import QueryClassifier
from model_router.triton.adapter import RequestModel, param
from model_router.vocabulary import USE_CASES

_HEADS = ("use_case", "language", "complexity", "modality")


class TritonPythonModel(RequestModel):
    name = "query_classifier"

    def initialize(self, args: dict) -> None:
        max_chars = int(param(json.loads(args["model_config"]), "max_text_chars", "8000"))
        self.classifier = QueryClassifier(max_chars=max_chars)
        self.classifier.classify("warm up", ())  # first call pays the embedding model's set-up
        pb_utils.Logger.log_info(f"query_classifier: ready (max_text_chars={max_chars})")

    def answer(self, request):
        texts = pb_utils.get_input_tensor_by_name(request, "text").as_numpy().reshape(-1)
        att = pb_utils.get_input_tensor_by_name(request, "attachments")
        kinds = att.as_numpy().reshape(len(texts), -1) if att is not None else [[]] * len(texts)
        results = [self.classifier.classify(t, list(k)) for t, k in zip(texts, kinds)]
        rows = [r.to_dict() for r in results]
        out = [pb_utils.Tensor(h, np.array([[d[h].encode()] for d in rows], dtype=np.object_)) for h in _HEADS]
        out += [
            pb_utils.Tensor("confidence", np.array([[d["confidence"][h] for h in _HEADS] for d in rows], dtype=np.float32)),
            pb_utils.Tensor("use_case_scores",
                            np.array([[d["use_case_scores"][u] for u in USE_CASES] for d in rows], dtype=np.float32)),
            pb_utils.Tensor("classification", np.array([[r.to_json().encode()] for r in results], dtype=np.object_)),
        ]
        return pb_utils.InferenceResponse(output_tensors=out)
