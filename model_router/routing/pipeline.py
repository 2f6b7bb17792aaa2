"""Multi-step work around the chosen text generator, each step a Triton model called through BLS.

Before it: what the model cannot take itself becomes text it can read (an image -> OCR, a video
-> sampled frames -> OCR, audio -> transcript). After it, for an avatar: the reply -> speech and a
viseme timeline. Which model plays each role is the registry's `steps`; which roles run follows
from the attachments, the use case and the chosen model's `media`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..contract.media import (FramesOutput, FramesRequest, OcrOutput, OcrRequest, SpeechOutput, SpeechRequest,
                              TranscriptionOutput, TranscriptionRequest)
from ..contract.tensors import Tensors
from .. import tracing
from ..errors import Cancelled, ServingError, never
from ..registry import ModelSpec, Registry
from ..contract.router import RouterRequest
from ..vocabulary import USE_CASE_TRAITS
from .targets import Prepared, clip_for_speech

# One BLS call to a step model, with its model-control lease held:
# (spec, inputs, outputs, timeout, cancelled) -> outputs.
CallStep = Callable[[ModelSpec, Tensors, list[str], float, Callable[[], bool]], Tensors]


@dataclass
class _Reading:
    """What the steps made of the attachments, gathered while preparing."""

    question: str
    context: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)


class Pipeline:
    """The steps of one request: each runs at most once, whichever candidate asks first."""

    def __init__(self, registry: Registry, profile: str, call: CallStep, timeout_s: float,
                 clock: Callable[[], float] = time.perf_counter, cancelled: Callable[[], bool] = never) -> None:
        self.registry, self.profile, self.call, self.timeout_s, self.clock = registry, profile, call, timeout_s, clock
        self.cancelled = cancelled
        self.records: list[dict[str, Any]] = []
        self._memo: dict[str, Any] = {}

    def _run(self, role: str, request: Any) -> Tensors:
        """One step, its request a contract request class (its `outputs` are what to ask for)."""
        if role in self._memo:
            return self._memo[role]
        if self.cancelled():  # a step not started is skipped for a client that is gone
            raise Cancelled(f"before step {role}")
        spec = self.registry.step(self.profile, role)
        if spec is None:
            raise ServingError(f"profile {self.profile!r} has no model for step {role!r}")
        t0 = self.clock()
        with tracing.span(f"step {role}", step=role, model=spec.name):  # its load and call are children
            out = self.call(spec, request.encode(), list(request.outputs), self.timeout_s, self.cancelled)
        self.records.append({"step": role, "model": spec.name, "ms": round((self.clock() - t0) * 1000, 1)})
        self._memo[role] = out
        return out

    def prepare(self, spec: ModelSpec, request: RouterRequest, use_case: str, language: str) -> Prepared:
        reading = _Reading(request.text.strip())
        att = request.attachments
        if "audio" in att and "audio" not in spec.media:
            self._hear(att["audio"], reading)
        if "image" in att:
            self._look(spec, att["image"], language, reading)
        if "video" in att:
            self._watch(spec, att["video"], language, reading)
        traits = USE_CASE_TRAITS[use_case]
        question = reading.question or traits.default_question
        prompt = question
        if reading.context:
            prompt = "\n\n".join(reading.context) + f"\n\nQuestion: {question}\nAnswer using the text above."
        if traits.persona:
            prompt = f"{traits.persona}\n\n{prompt}"
        preface = "\n".join(reading.shown) + "\n\n" if reading.shown else ""
        return Prepared(prompt, reading.images, preface, reading.degraded)

    def _hear(self, audio: bytes, reading: _Reading) -> None:
        heard = TranscriptionOutput.decode(self._run("transcribe", TranscriptionRequest(audio))).text.strip()
        reading.question = f"{reading.question}\n{heard}".strip() if heard else reading.question
        reading.shown.append(f"Heard: “{heard}”" if heard else "Heard: nothing intelligible")

    def _look(self, spec: ModelSpec, image: bytes, language: str, reading: _Reading) -> None:
        if "image" in spec.media:
            reading.images.append(image)
            return
        text = self._read([image], language)[0]
        reading.context.append(f"Text read from the image (OCR):\n{text}" if text else "No text could be read in the image.")
        reading.shown.append(f"Read from the image: “{' '.join(text.split())}”" if text else "No text found in the image.")
        reading.degraded.append(f"{spec.name} cannot see images: the image was read with OCR, not looked at")

    def _watch(self, spec: ModelSpec, video: bytes, language: str, reading: _Reading) -> None:
        got = FramesOutput.decode(self._run("sample_video", FramesRequest(video)))
        frames, times = list(got.images), list(got.times)
        if "image" in spec.media:
            # The frames go as images, in order, after any picture; their times go in the prompt,
            # since a model shown images alone cannot tell when each was taken.
            first, last = len(reading.images) + 1, len(reading.images) + len(frames)
            reading.images.extend(frames)
            which = (f"Image {first} is a frame" if first == last else
                     f"The {last} images are frames" if first == 1 else f"Images {first} to {last} are frames")
            taken = ", ".join(f"{t:.1f} s" for t in times)
            reading.question = (f"{which} sampled from the video, in order, taken at {taken}.\n"
                                f"{reading.question or USE_CASE_TRAITS['video'].default_question}")
            return
        seen = _on_screen(times, self._read(frames, language))
        lines = [f"{t:.1f} s: {s}" for t, s in seen]
        reading.context.append("Text on the video's frames (OCR), in order:\n" + "\n".join(lines) if lines
                               else f"No text could be read on the {len(frames)} frames sampled from the video.")
        reading.shown.append("On screen: " + "; ".join(f"{t:.1f} s “{' '.join(s.split())}”" for t, s in seen) if seen
                             else f"No text found on the {len(frames)} frames sampled.")
        reading.degraded.append(f"{spec.name} cannot see video: {len(frames)} sampled frames were read with OCR, "
                                "not watched")

    def _read(self, images: list[bytes], language: str) -> list[str]:
        return list(OcrOutput.decode(self._run("read_image", OcrRequest(tuple(images), language))).texts)

    def speak(self, reply: str, language: str) -> SpeechOutput:
        """The reply as speech (WAV) with its lip-sync timeline."""
        text = clip_for_speech(reply.strip()) or "..."
        return SpeechOutput.decode(self._run("speak", SpeechRequest(text, language)))


def _on_screen(times: list[float], texts: list[str]) -> list[tuple[float, str]]:
    """(first time, text) for each text as it appears, repeats of the previous frame dropped."""
    seen: list[tuple[float, str]] = []
    for t, text in zip(times, texts):
        if text and (not seen or seen[-1][1] != text):
            seen.append((t, text))
    return seen
