"""Triton adapter for model_router.media.video: video bytes in, sampled frames (PNG) and their times out."""
from __future__ import annotations

import numpy as np
import triton_python_backend_utils as pb_utils

from model_router.media.video import DEFAULT_FRAMES, sample_frames
from model_router.triton.adapter import RequestModel, first, strings


class TritonPythonModel(RequestModel):
    name = "video_frames"

    def answer(self, request):
        frames = sample_frames(bytes(first(request, "video")), int(first(request, "frames", DEFAULT_FRAMES)))
        return pb_utils.InferenceResponse(output_tensors=[
            strings("images", [f.png for f in frames]),
            pb_utils.Tensor("times", np.array([f.time_s for f in frames], dtype=np.float32))])
