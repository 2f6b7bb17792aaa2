"""Sample media made on the spot, for demos, tests and load tests: images with text drawn on them,
videos of such frames, speech re-encoded as FLAC. Needs Pillow and PyAV (the server's requirements)."""
from __future__ import annotations

import io

import numpy as np


def text_image(text: str, size: tuple[int, int] = (800, 200), fmt: str = "PNG"):
    """`text` drawn large, black on white; PIL image when fmt is None, else its encoded bytes."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).text((24, size[1] // 2 - 28), text, fill="black", font=ImageFont.load_default(size=44))
    if fmt is None:
        return img
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def text_video(cards: list[str], seconds_each: float = 2.0, fps: int = 4) -> bytes:
    """An MP4 (MPEG-4 part 2) showing each card's text in turn."""
    import av

    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 800, 200, "yuv420p"
        for card in cards:
            frame = av.VideoFrame.from_image(text_image(card, fmt=None))
            for _ in range(int(seconds_each * fps)):
                for packet in stream.encode(frame):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def flac(wav: bytes) -> bytes:
    """The WAV re-encoded as FLAC, so that a test sends a format other than the one TTS made."""
    import wave

    import av

    w = wave.open(io.BytesIO(wav))
    samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).reshape(1, -1)
    out = io.BytesIO()
    with av.open(out, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=w.getframerate(), layout="mono")
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = w.getframerate()
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()
