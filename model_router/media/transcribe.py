"""Speech to text with Whisper on CTranslate2 (faster-whisper): audio bytes in, text and segments out."""
from __future__ import annotations

from dataclasses import dataclass

from .audio import decode_audio


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
        segments, info = self.model.transcribe(decode_audio(audio), language=language or None, beam_size=1)
        segs = [{"start": round(s.start, 2), "end": round(s.end, 2), "text": s.text.strip()} for s in segments]
        return Transcript(" ".join(s["text"] for s in segs).strip(), info.language, segs)
