"""Triton adapter for model_router.media.video: video bytes in, sampled frames (PNG) and their times out."""
from __future__ import annotations

from model_router.contract.media import FramesOutput, FramesRequest
from model_router.media.video import DEFAULT_FRAMES, sample_frames
from model_router.triton.adapter import RequestModel, getter, response


class TritonPythonModel(RequestModel):
    name = "video_frames"

    def answer(self, request):
        req = FramesRequest.decode(getter(request))
        frames = sample_frames(req.video, req.frames or DEFAULT_FRAMES)
        return response(FramesOutput(tuple(f.png for f in frames), tuple(f.time_s for f in frames)).encode())
