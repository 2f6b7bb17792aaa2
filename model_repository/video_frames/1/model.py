"""Triton adapter for model_router.video: video bytes in, sampled frames (PNG) and their times out."""
from __future__ import annotations

import numpy as np
import triton_python_backend_utils as pb_utils

from model_router.errors import InputError
from model_router.video import DEFAULT_FRAMES, sample_frames


class TritonPythonModel:
    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        try:
            video = pb_utils.get_input_tensor_by_name(request, "video").as_numpy().reshape(-1)[0]
            count = pb_utils.get_input_tensor_by_name(request, "frames")
            frames = sample_frames(bytes(video), int(count.as_numpy().reshape(-1)[0]) if count is not None else DEFAULT_FRAMES)
        except InputError as exc:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG))
        except Exception as exc:  # the stub survives whatever FFmpeg makes of the bytes
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(f"video_frames: {exc}"))
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("images", np.array([f.png for f in frames], dtype=np.object_)),
            pb_utils.Tensor("times", np.array([f.time_s for f in frames], dtype=np.float32))])
