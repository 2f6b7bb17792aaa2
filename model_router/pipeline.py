"""Multi-step work around the chosen text generator, each step a Triton model called through BLS.

Before it: what the model cannot take itself becomes text it can read (an image -> OCR, a video
-> sampled frames -> OCR, audio -> transcript). After it, for an avatar: the reply -> speech and a
viseme timeline. Which model plays each role is the registry's `steps`; which roles run follows
from the attachments, the use case and the chosen model's `media`.
"""
from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .errors import ServingError
from .options import RouteRequest
from .registry import ModelSpec, Registry
from .speech import clip_for_speech
from .tensors import strings, texts

# One BLS call to a step model, with its model-control lease held: (spec, inputs, outputs, timeout) -> outputs.
CallStep = Callable[[ModelSpec, dict[str, np.ndarray], list[str], float], dict[str, np.ndarray]]

DEFAULT_QUESTIONS = {"multimodal": "Describe this image.", "video": "Summarize this video.",
                     "avatar": "Introduce yourself."}
AVATAR_PERSONA = ("You are a friendly assistant with a face and a voice, talking to a visitor. "
                  "Reply in one to three short spoken sentences, without lists or markup.")


@dataclass
class Prepared:
    """What the chosen text generator gets, and what the user is shown ahead of its answer."""

    prompt: str
    images: list[bytes] = field(default_factory=list)  # passed to a model whose `media` has image
    preface: str = ""                                   # the evidence read from the attachments
    degraded: list[str] = field(default_factory=list)   # why this is not the full path


class Pipeline:
    """The steps of one request: each runs at most once, whichever candidate asks first."""

    def __init__(self, registry: Registry, profile: str, call: CallStep, timeout_s: float,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.registry, self.profile, self.call, self.timeout_s, self.clock = registry, profile, call, timeout_s, clock
        self.records: list[dict[str, Any]] = []
        self._memo: dict[str, Any] = {}

    def _run(self, role: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        if role in self._memo:
            return self._memo[role]
        spec = self.registry.step(self.profile, role)
        if spec is None:
            raise ServingError(f"profile {self.profile!r} has no model for step {role!r}")
        t0 = self.clock()
        out = self.call(spec, inputs, outputs, self.timeout_s)
        self.records.append({"step": role, "model": spec.name, "ms": round((self.clock() - t0) * 1000, 1)})
        self._memo[role] = out
        return out

    def prepare(self, spec: ModelSpec, request: RouteRequest, use_case: str, language: str) -> Prepared:
        question = request.text.strip()
        context: list[str] = []
        shown: list[str] = []
        images: list[bytes] = []
        degraded: list[str] = []
        att = request.attachments
        if "audio" in att and "audio" not in spec.media:
            heard = " ".join(texts(self._run("transcribe", {"audio": strings(att["audio"]), "language": strings("")},
                                              ["text_output"]).get("text_output"))).strip()
            question = f"{question}\n{heard}".strip() if heard else question
            shown.append(f"Heard: “{heard}”" if heard else "Heard: nothing intelligible")
        if "image" in att:
            if "image" in spec.media:
                images.append(att["image"])
            else:
                text = self._read([att["image"]], language)[0]
                context.append(f"Text read from the image (OCR):\n{text}" if text else "No text could be read in the image.")
                shown.append(f"Read from the image: “{' '.join(text.split())}”" if text else "No text found in the image.")
                degraded.append(f"{spec.name} cannot see images: the image was read with OCR, not looked at")
        if "video" in att:
            out = self._run("sample_video", {"video": strings(att["video"])}, ["images", "times"])
            frames, times = list(out["images"].reshape(-1)), [float(t) for t in out["times"].reshape(-1)]
            if "image" in spec.media:
                images.extend(frames)
            else:
                seen = _on_screen(times, self._read(frames, language))
                lines = [f"{t:.1f} s: {s}" for t, s in seen]
                context.append("Text on the video's frames (OCR), in order:\n" + "\n".join(lines) if lines
                               else f"No text could be read on the {len(frames)} frames sampled from the video.")
                shown.append("On screen: " + "; ".join(f"{t:.1f} s “{' '.join(s.split())}”" for t, s in seen) if seen
                             else f"No text found on the {len(frames)} frames sampled.")
                degraded.append(f"{spec.name} cannot see video: {len(frames)} sampled frames were read with OCR, "
                                "not watched")
        question = question or DEFAULT_QUESTIONS.get(use_case, "")
        prompt = question
        if context:
            prompt = "\n\n".join(context) + f"\n\nQuestion: {question}\nAnswer using the text above."
        if use_case == "avatar":
            prompt = f"{AVATAR_PERSONA}\n\n{prompt}"
        return Prepared(prompt, images, "\n".join(shown) + "\n\n" if shown else "", degraded)

    def _read(self, images: list[bytes], language: str) -> list[str]:
        out = self._run("read_image", {"image": strings(*images), "language": strings(language)}, ["text_output"])
        return texts(out.get("text_output"))

    def speak(self, reply: str, language: str) -> dict[str, Any]:
        """{"audio": WAV bytes, "visemes": the lip-sync timeline} of the reply."""
        out = self._run("speak", {"text": strings(clip_for_speech(reply.strip()) or "..."), "language": strings(language)},
                        ["audio", "visemes"])
        return {"audio": out["audio"].reshape(-1)[0], "visemes": json.loads(texts(out["visemes"])[0])}


def _on_screen(times: list[float], texts: list[str]) -> list[tuple[float, str]]:
    """(first time, text) for each text as it appears, repeats of the previous frame dropped."""
    seen: list[tuple[float, str]] = []
    for t, text in zip(times, texts):
        if text and (not seen or seen[-1][1] != text):
            seen.append((t, text))
    return seen


def image_input(images: list[bytes]) -> np.ndarray:
    """The vLLM backend's `image` input: one base64 string per image."""
    return np.array([base64.b64encode(i) for i in images], dtype=np.object_)
