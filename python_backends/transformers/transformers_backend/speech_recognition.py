"""Speech recognition with a Hugging Face Whisper checkpoint (the transformers ASR pipeline).

Kept free of Triton so that it can be run and tested in a plain Python process.
"""
from __future__ import annotations

import torch
from transformers import pipeline

from model_router.media.audio import SAMPLE_RATE, decode_audio
from model_router.media.transcribe import Transcript


class SpeechRecognizer:
    """One model, one request at a time (Triton runs one execute per instance)."""

    def __init__(self, model_path: str, device: str = "cpu", dtype: str = "float32", max_new_tokens: int = 440) -> None:
        self.pipe = pipeline("automatic-speech-recognition", model=model_path, device=device,
                             dtype=getattr(torch, dtype), chunk_length_s=30)
        self.max_new_tokens = max_new_tokens

    def detect_language(self, samples) -> str:
        """Whisper's language token for the first 30 s, as a code ("en", "hi", ...); "" when unknown."""
        model = self.pipe.model
        if not hasattr(model, "detect_language"):
            return ""
        features = self.pipe.feature_extractor(samples[:30 * SAMPLE_RATE], sampling_rate=SAMPLE_RATE,
                                               return_tensors="pt").input_features
        with torch.inference_mode():
            token = int(model.detect_language(features.to(model.device, model.dtype)).reshape(-1)[0])
        return self.pipe.tokenizer.convert_ids_to_tokens(token).strip("<|>")

    def transcribe(self, audio: bytes, language: str | None = None) -> Transcript:
        samples = decode_audio(audio)
        detected = language or self.detect_language(samples)
        kwargs = {"task": "transcribe", "max_new_tokens": self.max_new_tokens}
        if detected:
            kwargs["language"] = detected
        with torch.inference_mode():
            out = self.pipe(samples, return_timestamps=True, generate_kwargs=kwargs)
        segs = [{"start": round(float(c["timestamp"][0] or 0.0), 2),
                 "end": round(float(c["timestamp"][1] if c["timestamp"][1] is not None else len(samples) / SAMPLE_RATE), 2),
                 "text": c["text"].strip()} for c in out.get("chunks", [])]
        return Transcript(out["text"].strip(), detected, segs)
