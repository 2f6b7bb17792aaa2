"""The router's own interface: what a client sends it and what it answers.

Inputs (each one BYTES element, all optional): `text`, `messages` (a conversation as JSON),
`image`, `audio`, `video` (bytes) and `options` (JSON). Every response carries `text_output` (a
piece while streaming); the last one also `routing` (the decision, JSON), `finish_reason`,
`num_input_tokens` and `num_output_tokens` (as the answering engine reported them), `tool_calls`
(OpenAI's shape, JSON) when the model called tools, for speech
`audio` (base64 WAV, so that it survives the JSON of Triton's HTTP generate route) and `visemes`, and
for options.embed `embeddings` (FP32 [n, dim], a vector per text) with their tokens as `num_input_tokens`.
`RouterRequest` (typed, validated once where it enters a process) and `RouterAnswer` own both
halves; a new request field is added here or in `request.RouteOptions`, once.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, computed_field

from ..errors import InputError
from ..vocabulary import ATTACHMENT_KINDS
from .request import (
    MAX_ATTACHMENT_BYTES,
    Message,
    RouteOptions,
    check_conversation,
    check_query,
    decode_text,
    is_blank,
    parse_messages,
    parse_options,
)
from .tensors import Get, Tensors, one, strings, texts

MODEL = "router"
DEFAULT_MAX_CHARS = 8000  # the router's max_text_chars unless its settings say otherwise
INPUTS = ("text", "messages", *ATTACHMENT_KINDS, "options")
OUTPUTS = ("text_output", "routing", "audio", "visemes", "finish_reason", "num_input_tokens", "num_output_tokens",
           "tool_calls", "embeddings")


@dataclass(frozen=True)
class RouterRequest:
    """The router's request, validated: `text` is the query (the last user turn when there is a
    conversation), `messages` the whole conversation (empty: just `text`). Build one with `of`."""

    text: str = ""
    options: RouteOptions = field(default_factory=RouteOptions)
    attachments: dict[str, bytes] = field(default_factory=dict)
    messages: tuple[Message, ...] = ()

    @classmethod
    def of(cls, text: bytes | str | None = "", options: dict[str, Any] | bytes | str | None = None,
           attachments: dict[str, bytes | None] | None = None, messages: list[Any] | bytes | str | None = None,
           max_chars: int = DEFAULT_MAX_CHARS) -> RouterRequest:
        """Validated from what a client sends: InputError names the field (`options.<name>`, `messages[i]`)
        and the limit. `text`, when given with `messages`, is the user's newest turn."""
        text = decode_text(text, max_chars)
        turns = parse_messages(messages)
        if turns and not is_blank(text):
            turns += (Message(role="user", content=text),)
            check_conversation(turns)  # as the router will read it: the newest turn counts too
        if turns:
            if turns[-1].role not in ("user", "tool"):
                raise InputError(f"messages[{len(turns) - 1}].role", "the last turn must be the user's (or a tool result)")
            # The classifier reads the user's last words; a tool result answers them.
            text = next((t.content for t in reversed(turns) if t.role == "user"), turns[-1].content)
        present = _attachments(attachments or {})
        opts = parse_options(options)
        if opts.embed is not None:  # its texts are options.embed.input: a query beside them would be ignored
            _embed_alone(text, turns, present)
        elif not opts.health and not opts.cache_admin and not opts.feedback:  # answered instead of routing
            check_query(text, tuple(present))
        return cls(text, opts, present, turns)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.attachments)

    @property
    def stream(self) -> bool:
        return self.options.stream

    def encode(self) -> Tensors:
        """A conversation travels as `messages` alone (its query is its last user turn), else `text`."""
        turns = [m.as_turn() for m in self.messages] or None
        return RouterInputs("" if turns else self.text, self.options.wire(), self.attachments, turns).encode()

    @classmethod
    def decode(cls, get: Get, max_chars: int = DEFAULT_MAX_CHARS) -> RouterRequest:
        """The router's validated request (errors name the input and the limit)."""
        return cls.of(one(get, "text"), one(get, "options"), {k: one(get, k) for k in ATTACHMENT_KINDS},
                      one(get, "messages"), max_chars)


@dataclass(frozen=True)
class RouterInputs:
    """A request as a client sends it, unchecked: the router validates it on arrival (RouterRequest.decode)
    and its errors name the field. A client that leaves the checks to the server sends this."""

    text: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    attachments: dict[str, bytes] = field(default_factory=dict)
    messages: list[dict[str, Any]] | None = None  # the conversation so far; `text`, when given, its newest turn

    @property
    def stream(self) -> bool:
        return bool(self.options.get("stream"))

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


def _embed_alone(text: str, turns: tuple[Message, ...], attachments: dict[str, bytes]) -> None:
    given = [name for name, there in (("text", not is_blank(text)), ("messages", bool(turns))) if there]
    if given or attachments:
        raise InputError((given or list(attachments))[0],
                         "not taken with options.embed: the texts to embed are options.embed.input")


def _attachments(attachments: dict[str, bytes | None]) -> dict[str, bytes]:
    """The attachments given, each within its kind's limit."""
    present = {}
    for kind, data in attachments.items():
        if kind not in ATTACHMENT_KINDS:
            raise InputError(kind, f"unknown attachment. Available: {list(ATTACHMENT_KINDS)}")
        if data:
            if len(data) > MAX_ATTACHMENT_BYTES[kind]:
                raise InputError(kind, f"{len(data)} bytes exceeds the limit of {MAX_ATTACHMENT_BYTES[kind]} bytes")
            present[kind] = data
    return present


class Usage(BaseModel):
    """An answer's token counts as its engine reported them; OpenAI's `usage`, total included."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)

    def __init__(self, prompt_tokens: int, completion_tokens: int, total_tokens: int | None = None,
                 **extra: Any) -> None:
        # Positional, as the router counts them: Usage(prompt, completion). OpenAI's JSON also carries
        # the total, which must add up (pydantic calls this for a nested Usage too).
        super().__init__(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, **extra)
        if total_tokens is not None and total_tokens != self.total_tokens:
            raise ValueError(f"total_tokens: {total_tokens} is not prompt_tokens + completion_tokens "
                             f"({self.total_tokens})")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class RouterAnswer:
    """The router's answer, one shape wherever it is: a piece (`final` False) or the last response, with
    everything else; a target's responses added up (`add`); the cache's copy (`record`)."""

    text: str = ""
    final: bool = True
    decision: dict[str, Any] = field(default_factory=dict)
    audio: bytes | None = None
    visemes: list[dict[str, Any]] | None = None
    finish_reason: str | None = None   # stop | length | abort, from the engine (None: it did not say)
    usage: Usage | None = None         # from the engine's counts (None: not a text generator)
    tool_calls: list[dict[str, Any]] | None = None  # OpenAI's shape; finish_reason is then "tool_calls"
    # options.embed: a vector per text ([n, dim] float32, unit length); arrays do not compare with ==.
    embeddings: np.ndarray | None = field(default=None, compare=False)

    @property
    def model(self) -> str | None:
        return self.decision.get("model")

    def add(self, got: RouterAnswer) -> RouterAnswer:
        """This answer followed by a later response of the same call: its text appended, output tokens
        added up (an engine counts them per response), the rest as the later one says, where it says."""
        usage = self.usage
        if got.usage is not None:
            usage = Usage(got.usage.prompt_tokens, (usage.completion_tokens if usage else 0) + got.usage.completion_tokens)
        return replace(self, text=self.text + got.text, audio=got.audio or self.audio,
                       visemes=got.visemes or self.visemes, finish_reason=got.finish_reason or self.finish_reason,
                       usage=usage)

    def sent_in_pieces(self) -> RouterAnswer:
        """The last response of a streamed answer: its text went out in the pieces before it."""
        return replace(self, text="")

    def record(self) -> dict[str, Any]:
        """As plain data (msgpack keeps the audio as bytes): usage as its two counts."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["usage"] = [self.usage.prompt_tokens, self.usage.completion_tokens] if self.usage else None
        values["embeddings"] = self.embeddings.tolist() if self.embeddings is not None else None
        return values

    @classmethod
    def from_record(cls, values: dict[str, Any]) -> RouterAnswer:
        usage, vectors = values.get("usage"), values.get("embeddings")
        return cls(**{**values, "usage": Usage(*usage) if usage else None,
                      "embeddings": np.array(vectors, dtype=np.float32) if vectors is not None else None})

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
        if self.embeddings is not None:
            tensors["embeddings"] = np.asarray(self.embeddings, dtype=np.float32)
        return tensors

    @classmethod
    def decode(cls, out: Tensors, final: bool) -> RouterAnswer:
        text = "".join(texts(out.get("text_output")))
        if not final:
            return cls(text, final=False)
        routing, audio, visemes = texts(out.get("routing")), out.get("audio"), texts(out.get("visemes"))
        calls, vectors = texts(out.get("tool_calls")), out.get("embeddings")
        usage = None
        if out.get("num_input_tokens") is not None and out.get("num_output_tokens") is not None:
            usage = Usage(int(out["num_input_tokens"].reshape(-1)[0]), int(out["num_output_tokens"].reshape(-1)[0]))
        return cls(text, True, json.loads(routing[0]) if routing and routing[0] else {},
                   base64.b64decode(audio.reshape(-1)[0]) if audio is not None and audio.size else None,
                   json.loads(visemes[0]) if visemes and visemes[0] else None,
                   "".join(texts(out.get("finish_reason"))) or None, usage,
                   json.loads(calls[0]) if calls and calls[0] else None,
                   np.asarray(vectors, dtype=np.float32) if vectors is not None else None)
