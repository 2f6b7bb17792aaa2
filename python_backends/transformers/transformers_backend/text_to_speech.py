"""Text to speech with a Hugging Face checkpoint (Bark, VITS/MMS-TTS, ...: the transformers TTS pipeline).

Kept free of Triton so that it can be run and tested in a plain Python process.
"""
from __future__ import annotations

import torch
from transformers import pipeline

from model_router.media.audio import wav_bytes


class Synthesizer:
    """One model, one request at a time (Triton runs one execute per instance)."""

    def __init__(self, model_path: str, device: str = "cpu", dtype: str = "float32") -> None:
        self.pipe = pipeline("text-to-speech", model=model_path, device=device, dtype=getattr(torch, dtype))

    def synthesize(self, text: str) -> tuple[bytes, int]:
        """(16-bit mono WAV, sample rate)."""
        with torch.inference_mode():
            out = self.pipe(text)
        rate = int(out["sampling_rate"])
        return wav_bytes(out["audio"], rate), rate
