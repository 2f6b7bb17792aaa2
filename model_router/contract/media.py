"""The step models' interfaces: speech synthesis (tts), transcription (stt), OCR and video frames.
Each request class encodes what a caller sends and decodes what the model reads; each output class
encodes what the model answers and decodes what the caller gets."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .request import decode_text
from .tensors import Get, Tensors, one, strings, texts

LANGUAGE_CHARS = 16
MAX_SPEECH_CHARS = 2000  # what a speech model says in one request (tts refuses more)
# Every tensor name of these interfaces, in and out.
INPUTS = ("text", "language", "audio", "image", "video", "frames")
OUTPUTS = ("audio", "sample_rate", "visemes", "text_output", "language", "segments", "images", "times")


def _text(get: Get, name: str, max_chars: int, default: str = "") -> str:
    return decode_text(one(get, name, default.encode()), max_chars, name)


@dataclass(frozen=True)
class SpeechRequest:
    """tts: text and its language in."""

    text: str
    language: str = "en"
    outputs = ("audio", "visemes")

    def encode(self) -> Tensors:
        return {"text": strings(self.text), "language": strings(self.language)}

    @classmethod
    def decode(cls, get: Get, max_chars: int) -> SpeechRequest:
        return cls(_text(get, "text", max_chars), _text(get, "language", LANGUAGE_CHARS, "en").strip() or "en")


@dataclass(frozen=True)
class SpeechOutput:
    """WAV bytes and a viseme timeline ([] from a model without phoneme timing)."""

    audio: bytes
    sample_rate: int
    visemes: list[dict] = field(default_factory=list)

    def encode(self) -> Tensors:
        return {"audio": strings(self.audio), "sample_rate": np.array([self.sample_rate], dtype=np.int32),
                "visemes": strings(json.dumps(self.visemes))}

    @classmethod
    def decode(cls, out: Tensors) -> SpeechOutput:
        audio = out["audio"].reshape(-1)[0] if "audio" in out else b""
        rate = out.get("sample_rate")
        return cls(bytes(audio), int(rate.reshape(-1)[0]) if rate is not None else 0,
                   json.loads("".join(texts(out.get("visemes"))) or "[]"))


@dataclass(frozen=True)
class TranscriptionRequest:
    """stt: audio bytes and an optional language hint ("" detects)."""

    audio: bytes
    language: str = ""
    outputs = ("text_output", "language", "segments")

    def encode(self) -> Tensors:
        return {"audio": strings(self.audio), "language": strings(self.language)}

    @classmethod
    def decode(cls, get: Get) -> TranscriptionRequest:
        audio = one(get, "audio")
        if audio is None:
            raise InputError("audio", "required")
        return cls(bytes(audio), _text(get, "language", LANGUAGE_CHARS).strip())


@dataclass(frozen=True)
class TranscriptionOutput:
    text: str
    language: str = ""
    segments: list[dict] = field(default_factory=list)

    def encode(self) -> Tensors:
        return {"text_output": strings(self.text), "language": strings(self.language),
                "segments": strings(json.dumps(self.segments, ensure_ascii=False))}

    @classmethod
    def decode(cls, out: Tensors) -> TranscriptionOutput:
        return cls("".join(texts(out.get("text_output"))), "".join(texts(out.get("language"))),
                   json.loads("".join(texts(out.get("segments"))) or "[]"))


@dataclass(frozen=True)
class OcrRequest:
    """Images and the language to read them in."""

    images: tuple[bytes, ...]
    language: str = "en"
    outputs = ("text_output",)

    def encode(self) -> Tensors:
        return {"image": strings(*self.images), "language": strings(self.language)}

    @classmethod
    def decode(cls, get: Get, max_images: int) -> OcrRequest:
        arr = get("image")
        images = () if arr is None else tuple(bytes(b) for b in arr.reshape(-1))
        if not 1 <= len(images) <= max_images:
            raise InputError("image", f"{len(images)} images; between 1 and {max_images} are allowed")
        return cls(images, _text(get, "language", LANGUAGE_CHARS, "en").strip() or "en")


@dataclass(frozen=True)
class OcrOutput:
    """The text read in each image, in order."""

    texts: tuple[str, ...]

    def encode(self) -> Tensors:
        return {"text_output": strings(*self.texts)}

    @classmethod
    def decode(cls, out: Tensors) -> OcrOutput:
        return cls(tuple(texts(out.get("text_output"))))


@dataclass(frozen=True)
class FramesRequest:
    """A video, and how many frames to sample (0: the model's default)."""

    video: bytes
    frames: int = 0
    outputs = ("images", "times")

    def encode(self) -> Tensors:
        tensors = {"video": strings(self.video)}
        if self.frames:
            tensors["frames"] = np.array([self.frames], dtype=np.int32)
        return tensors

    @classmethod
    def decode(cls, get: Get) -> FramesRequest:
        video = one(get, "video")
        if video is None:
            raise InputError("video", "required")
        return cls(bytes(video), int(one(get, "frames", 0)))


@dataclass(frozen=True)
class FramesOutput:
    """Sampled frames (PNG) and their times in seconds."""

    images: tuple[bytes, ...]
    times: tuple[float, ...]

    def encode(self) -> Tensors:
        return {"images": strings(*self.images), "times": np.array(self.times, dtype=np.float32)}

    @classmethod
    def decode(cls, out: Tensors) -> FramesOutput:
        return cls(tuple(bytes(b) for b in out["images"].reshape(-1)), tuple(float(t) for t in out["times"].reshape(-1)))


__all__ = ["SpeechRequest", "SpeechOutput", "TranscriptionRequest", "TranscriptionOutput", "OcrRequest", "OcrOutput",
           "FramesRequest", "FramesOutput"]
