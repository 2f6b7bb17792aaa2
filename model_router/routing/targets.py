"""What each kind of target is asked when it answers a request itself: one class per interface,
picked once by the registry's `interface`. The tensors are the contract's (model_router.contract):
each class says which request of the contract to send and adds up what comes back.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..contract.generation import USAGE_REPORTS, GenerateOutput, GenerateRequest
from ..contract.media import MAX_SPEECH_CHARS, SpeechOutput, SpeechRequest, TranscriptionOutput, TranscriptionRequest
from ..contract.router import RouterAnswer, RouterRequest, Usage
from ..contract.tensors import Tensors
from ..errors import InputError
from ..registry import ModelSpec
from ..tools.constraint import structured_outputs
from ..tools.prompt import with_tools
from .chat import render

_QUOTED = re.compile(r"'([^']{2,})'|\"([^\"]{2,})\"|‘([^’]{2,})’|“([^”]{2,})”")


@dataclass
class Prepared:
    """What the chosen text generator gets (routing.pipeline), and what the user is shown ahead of its answer."""

    prompt: str
    images: list[bytes] = field(default_factory=list)  # passed to a model whose `media` has image
    preface: str = ""                                   # the evidence read from the attachments
    degraded: list[str] = field(default_factory=list)   # why this is not the full path


class Target:
    """A kind of target model, as the router's chosen model. `streams`: decoupled, many responses."""

    interface = ""
    streams = False

    def for_request(self, spec: ModelSpec, request: RouterRequest, language: str, stream: bool,
                    prepared: Prepared | None) -> tuple[Tensors, list[str]]:
        """The inputs when this target answers the request itself, and the outputs to ask for."""
        raise TypeError(f"a {self.interface} model only serves as a step")

    def decode(self, out: Tensors) -> RouterAnswer:
        """One response of the target, as a part of the router's answer (added up with RouterAnswer.add)."""
        raise NotImplementedError


class TextGeneration(Target):
    """The vLLM backend's contract (contract.generation). Ours also takes the whole conversation as
    `messages` and applies its own chat template; for a model the registry gives a tokenizer (the
    vLLM backend takes raw prompts) the router renders the conversation with its template (routing.chat).
    Tools go in Hermes' format into the system turn, or, for a template that writes them itself
    (registry tool_prompt: template), to that template: through the tokenizer, or as the `tools` input."""

    interface, streams = "text-generation", True

    def for_request(self, spec: ModelSpec, request: RouterRequest, language: str, stream: bool,
                    prepared: Prepared | None) -> tuple[Tensors, list[str]]:
        prompt, images = (prepared.prompt, prepared.images) if prepared else (request.text, [])
        opts = request.options
        turns = [m.as_turn() for m in request.messages]
        if not turns or turns[-1]["role"] == "user":  # the query's turn carries what the steps prepared
            turns[-1:] = [{"role": "user", "content": prompt}]
        tools = [t.model_dump(exclude_none=True) for t in opts.tools] if opts.wants_tools else []
        if spec.tool_prompt == "hermes":
            turns, tools = with_tools(turns, tuple(opts.tools) if tools else ()), []
        messages = turns if len(turns) > 1 or request.messages or tools else None
        if spec.tokenizer:
            if images:  # the template puts the model's own image placeholders where the parts are
                turns[-1]["content"] = [{"type": "image"}] * len(images) + [{"type": "text", "text": prompt}]
            prompt, messages, tools = render(spec, turns, tools), None, []
        # vLLM gives the i-th image the place of the prompt's i-th image placeholder and refuses a
        # prompt with fewer placeholders than images: they go in front where the prompt has none.
        if images and spec.image_placeholder and spec.image_placeholder not in prompt:
            prompt = spec.image_placeholder * len(images) + prompt
        constraint = structured_outputs(tuple(opts.tools), opts.tool_choice if opts.wants_tools else None,
                                        opts.response_format)
        sampling = opts.sampling_parameters.model_copy(update={"structured_outputs": constraint} if constraint else {})
        req = GenerateRequest(prompt, sampling, stream, True, messages, tuple(images), tools or None,
                              returns=USAGE_REPORTS)
        return req.encode(), req.outputs

    def decode(self, out: Tensors) -> RouterAnswer:
        got = GenerateOutput.decode(out)
        usage = Usage(got.num_input_tokens, got.num_output_tokens or 0) if got.num_input_tokens is not None else None
        return RouterAnswer(got.text, False, finish_reason=got.finish_reason, usage=usage)


class Speech(Target):
    """tts: text and language in; WAV and a viseme timeline out."""

    interface = "tts"

    def for_request(self, spec: ModelSpec, request: RouterRequest, language: str, stream: bool,
                    prepared: Prepared | None) -> tuple[Tensors, list[str]]:
        req = SpeechRequest(what_to_say(request.text), language)
        return req.encode(), list(req.outputs)

    def decode(self, out: Tensors) -> RouterAnswer:
        got = SpeechOutput.decode(out)
        return RouterAnswer(final=False, audio=got.audio or None, visemes=got.visemes or None)


class Transcription(Target):
    """stt: audio and an optional language hint in; the words said out."""

    interface = "stt"

    def for_request(self, spec: ModelSpec, request: RouterRequest, language: str, stream: bool,
                    prepared: Prepared | None) -> tuple[Tensors, list[str]]:
        if "audio" not in request.attachments:
            raise InputError("audio", "speech to text needs an audio attachment")
        # The query's language says how the user writes, not what the recording speaks: only an
        # explicit options.language is passed as a hint.
        req = TranscriptionRequest(request.attachments["audio"], request.options.language or "")
        return req.encode(), list(req.outputs)

    def decode(self, out: Tensors) -> RouterAnswer:
        return RouterAnswer(TranscriptionOutput.decode(out).text, False)


class Step(Target):
    """A model that only serves as a step (ocr, frames: routing.pipeline) or answers apart from routing
    (embedding: routing.embed), called through its own contract."""

    def __init__(self, interface: str) -> None:
        self.interface = interface


TARGETS: dict[str, Target] = {t.interface: t for t in (TextGeneration(), Speech(), Transcription(), Step("ocr"),
                                                       Step("frames"), Step("embedding"))}


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
