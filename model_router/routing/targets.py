"""What each kind of target takes and returns: one class per interface, picked once by the registry's
`interface`. Each encodes the inputs its models take and decodes what they send back, so nothing
else in the router knows a tensor name.
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..registry import ModelSpec
from ..contract.tensors import strings, texts
from .chat import render

if TYPE_CHECKING:
    from ..request import RouteRequest
    from .pipeline import Prepared

Tensors = dict[str, np.ndarray]
MAX_SPEECH_CHARS = 2000
_QUOTED = re.compile(r"'([^']{2,})'|\"([^\"]{2,})\"|‘([^’]{2,})’|“([^”]{2,})”")


@dataclass
class Output:
    """One response of a target, decoded."""

    text: str = ""
    audio: bytes | None = None
    visemes: list[dict] | None = None


class Target:
    """A kind of target model. `outputs` are the tensors to ask for; `streams`: decoupled, many responses."""

    interface = ""
    outputs: tuple[str, ...] = ()
    streams = False

    def for_request(self, spec: ModelSpec, request: RouteRequest, language: str, stream: bool,
                    prepared: Prepared | None) -> Tensors:
        """The inputs when this target answers the request itself (the router's chosen model)."""
        raise TypeError(f"a {self.interface} model only serves as a step")

    def decode(self, out: Tensors) -> Output:
        return Output(text="".join(texts(out.get("text_output"))))


class TextGeneration(Target):
    """The vLLM backend's contract, which every text generator here shares (ours included). Ours also
    takes the whole conversation as `messages` (JSON turns) and applies its own chat template; for a
    vLLM-backend model the router renders the conversation with the model's template (routing.chat)."""

    interface, outputs, streams = "text-generation", ("text_output",), True

    def inputs(self, prompt: str, sampling: dict[str, Any], stream: bool, images: list[bytes] = (),
               placeholder: str = "", messages: list[dict[str, Any]] | None = None) -> Tensors:
        tensors = {"text_input": strings(prompt), "stream": np.array([stream], dtype=bool),
                   "exclude_input_in_output": np.array([True], dtype=bool),
                   "sampling_parameters": strings(json.dumps(sampling))}
        if messages is not None:
            tensors["messages"] = strings(json.dumps(messages, ensure_ascii=False))
        if images:  # the vLLM backend's `image` input: one base64 string per image
            tensors["image"] = np.array([base64.b64encode(i) for i in images], dtype=np.object_)
            # vLLM gives the i-th image the place of the prompt's i-th image placeholder and refuses a
            # prompt with fewer placeholders than images: they go in front where the prompt has none.
            if placeholder and placeholder not in prompt:
                tensors["text_input"] = strings(placeholder * len(images) + prompt)
        return tensors

    def for_request(self, spec: ModelSpec, request: RouteRequest, language: str, stream: bool,
                    prepared: Prepared | None) -> Tensors:
        prompt, images = (prepared.prompt, prepared.images) if prepared else (request.text, [])
        turns = [m.model_dump() for m in request.messages[:-1]] + [{"role": "user", "content": prompt}]
        sampling = request.options.sampling_parameters
        if spec.backend == "vllm" and spec.tokenizer:
            if images:  # the template puts the model's own image placeholders where the parts are
                turns[-1]["content"] = [{"type": "image"}] * len(images) + [{"type": "text", "text": prompt}]
            prompt = render(spec.tokenizer, turns) or prompt
            return self.inputs(prompt, sampling, stream, images, spec.image_placeholder)
        return self.inputs(prompt, sampling, stream, images, spec.image_placeholder,
                           turns if request.messages else None)


class Speech(Target):
    """tts: text and language in; WAV and a viseme timeline out ("[]" from a model without phoneme timing)."""

    interface, outputs = "tts", ("audio", "visemes")

    def inputs(self, text: str, language: str) -> Tensors:
        return {"text": strings(text), "language": strings(language)}

    def for_request(self, spec: ModelSpec, request: RouteRequest, language: str, stream: bool,
                    prepared: Prepared | None) -> Tensors:
        return self.inputs(what_to_say(request.text), language)

    def decode(self, out: Tensors) -> Output:
        visemes = json.loads("".join(texts(out.get("visemes"))) or "[]")
        audio = out["audio"].reshape(-1)[0] if "audio" in out else None
        return Output(audio=audio, visemes=visemes or None)


class Transcription(Target):
    """stt: audio and an optional language hint in; the words said out."""

    interface, outputs = "stt", ("text_output",)

    def inputs(self, audio: bytes, language_hint: str = "") -> Tensors:
        return {"audio": strings(audio), "language": strings(language_hint)}

    def for_request(self, spec: ModelSpec, request: RouteRequest, language: str, stream: bool,
                    prepared: Prepared | None) -> Tensors:
        if "audio" not in request.attachments:
            raise InputError("audio", "speech to text needs an audio attachment")
        # The query's language says how the user writes, not what the recording speaks: only an
        # explicit options.language is passed as a hint.
        return self.inputs(request.attachments["audio"], request.options.language or "")


class Ocr(Target):
    """Images and a language in; the text read in each out."""

    interface, outputs = "ocr", ("text_output",)

    def inputs(self, images: list[bytes], language: str) -> Tensors:
        return {"image": strings(*images), "language": strings(language)}

    @staticmethod
    def read(out: Tensors) -> list[str]:
        return texts(out.get("text_output"))


class Frames(Target):
    """A video in; sampled frames (PNG) and their times out."""

    interface, outputs = "frames", ("images", "times")

    def inputs(self, video: bytes) -> Tensors:
        return {"video": strings(video)}

    @staticmethod
    def frames(out: Tensors) -> tuple[list[bytes], list[float]]:
        return list(out["images"].reshape(-1)), [float(t) for t in out["times"].reshape(-1)]


TARGETS: dict[str, Target] = {t.interface: t for t in (TextGeneration(), Speech(), Transcription(), Ocr(), Frames())}


def target_of(spec: ModelSpec) -> Target:
    if spec.interface not in TARGETS:
        raise TypeError(f"model {spec.name!r}: interface {spec.interface!r} is not a target. Available: {sorted(TARGETS)}")
    return TARGETS[spec.interface]


def what_to_say(query: str) -> str:
    """The quoted part of "read this aloud: 'Hello'", else what follows a colon, else the whole query."""
    quoted = ["".join(m.groups(default="")) for m in _QUOTED.finditer(query)]
    if quoted:
        return max(quoted, key=len).strip()
    if ":" in query:
        after = query.split(":", 1)[1].strip()
        if after:
            return after
    return query.strip()


def clip_for_speech(text: str, limit: int = MAX_SPEECH_CHARS) -> str:
    """`text` cut to `limit` characters at the last sentence (else word) boundary."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    cut = max(head.rfind(". "), head.rfind("! "), head.rfind("? "), head.rfind("। "))
    return head[:cut + 1] if cut > limit // 2 else head.rsplit(" ", 1)[0]
