"""The router's own interface: what a client sends it and what it answers.

Inputs (each one BYTES element, all optional): `text`, `messages` (a conversation as JSON),
`image`, `audio`, `video` (bytes) and `options` (JSON). Every response carries `text_output` (a
piece while streaming); the last one also `routing` (the decision, JSON), `finish_reason`,
`num_input_tokens` and `num_output_tokens` (as the answering engine reported them), `tool_calls`
(OpenAI's shape, JSON) when the model called tools, and for speech
`audio` (base64 WAV, so that it survives the JSON of Triton's HTTP generate route) and `visemes`.
`RouterRequest` and `RouterAnswer` own both halves; a new request field is added here, once.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..vocabulary import ATTACHMENT_KINDS
from .request import RouteRequest, make_request
from .tensors import Get, Tensors, one, strings, texts

MODEL = "router"
INPUTS = ("text", "messages", *ATTACHMENT_KINDS, "options")
OUTPUTS = ("text_output", "routing", "audio", "visemes", "finish_reason", "num_input_tokens", "num_output_tokens",
           "tool_calls")


@dataclass(frozen=True)
class RouterRequest:
    text: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    attachments: dict[str, bytes] = field(default_factory=dict)
    messages: list[dict[str, Any]] | None = None

    def encode(self) -> Tensors:
        tensors = {"text": strings(self.text), "options": strings(json.dumps(self.options, ensure_ascii=False))}
        tensors.update({kind: strings(data) for kind, data in self.attachments.items()})
        if self.messages is not None:
            tensors["messages"] = strings(json.dumps(self.messages, ensure_ascii=False))
        return tensors

    def as_json(self) -> dict[str, str]:
        """The body of Triton's HTTP generate route (JSON: no attachments there)."""
        return {name: (v[0].decode() if isinstance(v[0], bytes) else str(v[0]))
                for name, v in self.encode().items() if name not in ATTACHMENT_KINDS}

    @staticmethod
    def decode(get: Get, max_chars: int) -> RouteRequest:
        """The router's validated request (errors name the input and the limit)."""
        return make_request(one(get, "text"), {k: one(get, k) for k in ATTACHMENT_KINDS}, one(get, "options"),
                            max_chars, one(get, "messages"))

    @property
    def stream(self) -> bool:
        return bool(self.options.get("stream"))


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    def as_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}


@dataclass(frozen=True)
class RouterAnswer:
    """One response of the router: a piece (`final` False) or the last one, with everything else."""

    text: str = ""
    final: bool = True
    decision: dict[str, Any] = field(default_factory=dict)
    audio: bytes | None = None
    visemes: list[dict[str, Any]] | None = None
    finish_reason: str | None = None   # stop | length | abort, from the engine (None: it did not say)
    usage: Usage | None = None         # from the engine's counts (None: not a text generator)
    tool_calls: list[dict[str, Any]] | None = None  # OpenAI's shape; finish_reason is then "tool_calls"

    @property
    def model(self) -> str | None:
        return self.decision.get("model")

    def encode(self) -> Tensors:
        tensors = {"text_output": strings(self.text)}
        if not self.final:
            return tensors
        tensors["routing"] = strings(json.dumps(self.decision, ensure_ascii=False))
        if self.audio is not None:
            tensors["audio"] = strings(base64.b64encode(self.audio))
        if self.visemes:
            tensors["visemes"] = strings(json.dumps(self.visemes))
        if self.finish_reason:
            tensors["finish_reason"] = strings(self.finish_reason)
        if self.tool_calls:
            tensors["tool_calls"] = strings(json.dumps(self.tool_calls, ensure_ascii=False))
        if self.usage is not None:
            tensors["num_input_tokens"] = np.array([self.usage.prompt_tokens], dtype=np.uint32)
            tensors["num_output_tokens"] = np.array([self.usage.completion_tokens], dtype=np.uint32)
        return tensors

    @classmethod
    def decode(cls, out: Tensors, final: bool) -> RouterAnswer:
        text = "".join(texts(out.get("text_output")))
        if not final:
            return cls(text, final=False)
        routing, audio, visemes = texts(out.get("routing")), out.get("audio"), texts(out.get("visemes"))
        calls = texts(out.get("tool_calls"))
        usage = None
        if out.get("num_input_tokens") is not None and out.get("num_output_tokens") is not None:
            usage = Usage(int(out["num_input_tokens"].reshape(-1)[0]), int(out["num_output_tokens"].reshape(-1)[0]))
        return cls(text, True, json.loads(routing[0]) if routing and routing[0] else {},
                   base64.b64decode(audio.reshape(-1)[0]) if audio is not None and audio.size else None,
                   json.loads(visemes[0]) if visemes and visemes[0] else None,
                   "".join(texts(out.get("finish_reason"))) or None, usage,
                   json.loads(calls[0]) if calls and calls[0] else None)
