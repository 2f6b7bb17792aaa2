"""Triton adapter for model_router.media.ocr: images (+ language) in, the text read in each out."""
from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import triton_python_backend_utils as pb_utils

from model_router.errors import InputError
from model_router.media.ocr import read_text
from model_router.triton.adapter import RequestModel, first_text, param, strings


class TritonPythonModel(RequestModel):
    name = "ocr_tesseract"

    def initialize(self, args: dict) -> None:
        if shutil.which("tesseract") is None:
            raise pb_utils.TritonModelException("ocr_tesseract: tesseract is not installed (scripts/setup.sh installs it)")
        config = json.loads(args["model_config"])
        self.max_images = int(param(config, "max_images", "32"))
        # Tesseract runs as a subprocess: threads overlap them without holding the GIL.
        self.pool = ThreadPoolExecutor(int(param(config, "threads", "2")))

    def answer(self, request):
        images = pb_utils.get_input_tensor_by_name(request, "image").as_numpy().reshape(-1)
        if not 1 <= images.size <= self.max_images:
            raise InputError("image", f"{images.size} images; between 1 and {self.max_images} are allowed")
        language = first_text(request, "language", 16, b"en")
        texts = list(self.pool.map(lambda ib: read_text(bytes(ib[1]), language, field=f"image[{ib[0]}]"),
                                   enumerate(images)))
        return pb_utils.InferenceResponse(output_tensors=[strings("text_output", texts)])

    def finalize(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
