"""Triton adapter for model_router.ocr: images (+ language) in, the text read in each out."""
from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import triton_python_backend_utils as pb_utils

from model_router.errors import InputError
from model_router.ocr import read_text
from model_router.text import decode_text


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        if shutil.which("tesseract") is None:
            raise pb_utils.TritonModelException("ocr_tesseract: tesseract is not installed (scripts/setup.sh installs it)")
        params = json.loads(args["model_config"]).get("parameters", {})
        self.max_images = int(params.get("max_images", {}).get("string_value", "32"))
        # Tesseract runs as a subprocess: threads overlap them without holding the GIL.
        self.pool = ThreadPoolExecutor(int(params.get("threads", {}).get("string_value", "2")))

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        try:
            images = pb_utils.get_input_tensor_by_name(request, "image").as_numpy().reshape(-1)
            if not 1 <= images.size <= self.max_images:
                raise InputError("image", f"{images.size} images; between 1 and {self.max_images} are allowed")
            lang = pb_utils.get_input_tensor_by_name(request, "language")
            language = decode_text(lang.as_numpy().reshape(-1)[0] if lang is not None else b"en", 16, "language")
            texts = list(self.pool.map(lambda ib: read_text(bytes(ib[1]), language, field=f"image[{ib[0]}]"),
                                       enumerate(images)))
        except InputError as exc:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG))
        except Exception as exc:  # tesseract failed: this request fails, the model stays up
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(f"ocr_tesseract: {exc}"))
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("text_output", np.array([t.encode() for t in texts], dtype=np.object_))])

    def finalize(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
