"""Speech to text with Whisper on CTranslate2 (faster-whisper): audio bytes in, text and segments out."""
from __future__ import annotations

import io
from dataclasses import dataclass

from .errors import InputError

MAX_AUDIO_SECONDS = 600.0


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    segments: list[dict]


class Transcriber:
    def __init__(self, model_path: str, threads: int = 2, compute_type: str = "int8", device: str = "cpu") -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(model_path, device=device, compute_type=compute_type, cpu_threads=threads)

    def transcribe(self, audio: bytes, language: str | None = None) -> Transcript:
        from faster_whisper.audio import decode_audio

        try:
            samples = decode_audio(io.BytesIO(audio))
        except Exception as exc:  # PyAV names the container problem
            raise InputError("audio", f"cannot decode ({exc.__class__.__name__}: {str(exc)[:120]}); "
                                      "send wav, flac, mp3 or ogg") from None
        seconds = len(samples) / 16000
        if seconds == 0:
            raise InputError("audio", "no samples")
        if seconds > MAX_AUDIO_SECONDS:
            raise InputError("audio", f"{seconds:.0f} s exceeds the limit of {MAX_AUDIO_SECONDS:.0f} s")
        segments, info = self.model.transcribe(samples, language=language or None, beam_size=1)
        segs = [{"start": round(s.start, 2), "end": round(s.end, 2), "text": s.text.strip()} for s in segments]
        return Transcript(" ".join(s["text"] for s in segs).strip(), info.language, segs)
