"""Triton adapter for model_router.media.ocr: images (+ language) in, the text read in each out."""
from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import triton_python_backend_utils as pb_utils

from model_router.contract.media import OcrOutput, OcrRequest
from model_router.media.ocr import read_text
from model_router.triton.adapter import RequestModel, getter, param, response


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
        req = OcrRequest.decode(getter(request), self.max_images)
        texts = self.pool.map(lambda ib: read_text(ib[1], req.language, field=f"image[{ib[0]}]"), enumerate(req.images))
        return response(OcrOutput(tuple(texts)).encode())

    def finalize(self) -> None:
        super().finalize()
        self.pool.shutdown(wait=False, cancel_futures=True)
