"""Audio bytes (wav, flac, mp3, ogg, ...) -> 16 kHz mono float32 samples, with PyAV (FFmpeg)."""
from __future__ import annotations

import io
import wave

import numpy as np

from ..errors import InputError

SAMPLE_RATE = 16000
MAX_AUDIO_SECONDS = 600.0


def decode_audio(data: bytes, field: str = "audio", max_seconds: float = MAX_AUDIO_SECONDS) -> np.ndarray:
    """Samples in [-1, 1] at 16 kHz, or InputError naming `field`: undecodable, empty or too long."""
    import av

    if not data:
        raise InputError(field, "empty")
    limit = int(max_seconds * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.audio:
                raise InputError(field, "has no audio stream")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    total += chunks[-1].size
                if total > limit:
                    raise InputError(field, f"longer than the limit of {max_seconds:.0f} s")
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    except InputError:
        raise
    except Exception as exc:  # FFmpeg names the container problem
        raise InputError(field, f"cannot decode ({exc.__class__.__name__}: {str(exc)[:120]}); "
                                "send wav, flac, mp3 or ogg") from None
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    if samples.size == 0:
        raise InputError(field, "no samples")
    return samples.astype(np.float32) / 32768.0


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """16-bit mono WAV of float samples in [-1, 1] (clipped)."""
    pcm = (np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0) * 32767).astype("<i2")
    return pcm16_wav(pcm.tobytes(), sample_rate)


def pcm16_wav(pcm: bytes, sample_rate: int) -> bytes:
    """16-bit little-endian mono PCM wrapped as WAV."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buf.getvalue()
