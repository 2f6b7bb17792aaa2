"""Sample frames from a video with PyAV (FFmpeg), as PNG images with their times."""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

MAX_VIDEO_SECONDS = 600.0
MAX_FRAME_PIXELS = 4096 * 2160
DEFAULT_FRAMES = 8
MAX_FRAMES = 32
SAME_FRAME = 2.0  # mean absolute difference (0..255) under which a frame repeats the last one kept


@dataclass(frozen=True)
class Frame:
    time_s: float
    png: bytes


def sample_frames(data: bytes, count: int = DEFAULT_FRAMES, field: str = "video") -> list[Frame]:
    """Up to `count` frames spread evenly over the video, dropping ones that repeat the previous."""
    import av

    if not 1 <= count <= MAX_FRAMES:
        raise InputError("frames", f"{count} is out of range [1, {MAX_FRAMES}]")
    try:
        container = av.open(io.BytesIO(data))
    except Exception as exc:  # FFmpeg names the container problem
        raise InputError(field, f"cannot decode ({exc.__class__.__name__}: {str(exc)[:120]}); "
                                "send MP4, WebM, MKV, AVI or MOV") from None
    with container:
        if not container.streams.video:
            raise InputError(field, "has no video stream")
        stream = container.streams.video[0]
        if stream.width * stream.height > MAX_FRAME_PIXELS:
            raise InputError(field, f"{stream.width}x{stream.height} exceeds the limit of {MAX_FRAME_PIXELS} pixels a frame")
        duration = container.duration / 1e6 if container.duration else 0.0
        if duration > MAX_VIDEO_SECONDS:
            raise InputError(field, f"{duration:.0f} s exceeds the limit of {MAX_VIDEO_SECONDS:.0f} s")
        # Targets at the middle of `count` equal slices, so that a title card and an end card both count.
        targets = [duration * (i + 0.5) / count for i in range(count)] if duration else []
        picked: list[tuple[float, object]] = []
        try:
            for frame in container.decode(stream):
                t = float(frame.time or 0.0)
                if frame.time is not None and t > MAX_VIDEO_SECONDS:
                    raise InputError(field, f"runs past the limit of {MAX_VIDEO_SECONDS:.0f} s")
                if not targets:  # unknown duration: take frames as they come
                    picked.append((t, frame.to_image()))
                    if len(picked) >= count:
                        break
                elif t + 1e-6 >= targets[len(picked)]:
                    picked.append((t, frame.to_image()))
                    if len(picked) == len(targets):
                        break
        except InputError:
            raise
        except Exception as exc:
            if not picked:
                raise InputError(field, f"cannot decode frames ({exc.__class__.__name__}: {str(exc)[:120]})") from None
    if not picked:
        raise InputError(field, "has no decodable frames")
    return _distinct(picked)


def _distinct(picked: list[tuple[float, object]]) -> list[Frame]:
    out: list[Frame] = []
    last = None
    for t, img in picked:
        arr = np.asarray(img.convert("L").resize((64, 64)), dtype=np.float32)
        if last is not None and float(np.abs(arr - last).mean()) < SAME_FRAME:
            continue
        last = arr
        buf = io.BytesIO()
        img.save(buf, "PNG")
        out.append(Frame(round(t, 3), buf.getvalue()))
    return out
