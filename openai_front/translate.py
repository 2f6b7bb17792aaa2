"""OpenAI requests -> router calls: which input each field becomes. Pure; no I/O, no routing.

Each call also records which OpenAI field each router field came from, so that the router's
errors ("options.sampling_parameters.temperature: ...") name the field the client sent.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from model_router.contract.generation import SAMPLING
from model_router import tracing
from model_router.contract.request import MAX_CONVERSATION_CHARS, Message, RouteOptions
from model_router.contract.router import RouterRequest
from model_router.errors import InputError

from .errors import bad_request
from .tenants.caller import current_options
from .protocol import AUTO, ChatCompletionRequest, ChatMessage, SpeechBody, TranscriptionBody

SAMPLING_FIELDS = ("max_tokens", "temperature", "top_p", "stop", "seed", "top_k", "repetition_penalty", "ignore_eos")
AGENT = ("tools", "tool_choice", "parallel_tool_calls", "response_format")  # options of the same names
# Where the router's errors name a sampling field (model_router.contract.request.parse_options).
SAMPLING_OPTION = f"options.{SAMPLING}"
# POST /v1/feedback's body is the router's options.feedback: its fields as the client sent them.
FEEDBACK_FIELDS = {"options.feedback.decision_id": "decision_id", "options.feedback.score": "score"}


@dataclass(frozen=True)
class RouterCall:
    """One request to the router (the contract's RouterRequest), and the OpenAI field behind each router field."""

    request: RouterRequest
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def stream(self) -> bool:
        return self.request.stream

    def openai_field(self, router_field: str) -> str:
        """The OpenAI field a router field path came from ("options.model" -> "model")."""
        return openai_field(self.fields, router_field)


def openai_field(fields: dict[str, str], router_field: str) -> str:
    for prefix in sorted(fields, key=len, reverse=True):
        if router_field == prefix or router_field.startswith((prefix + ".", prefix + "[")):
            return fields[prefix] + router_field[len(prefix):]
    return router_field


def router_call(fields: dict[str, str], text: str = "", options: dict[str, Any] | None = None,
                attachments: dict[str, bytes] | None = None, messages: list[Message] | None = None) -> RouterCall:
    """The router's request, validated here (as the router will again): an error names the OpenAI field."""
    try:
        request = RouterRequest.of(text, _traced(options), attachments, messages, max_chars=MAX_CONVERSATION_CHARS)
    except InputError as exc:
        raise bad_request(openai_field(fields, exc.field), str(exc).partition(": ")[2]) from None
    return RouterCall(request, fields)


def _traced(options: dict[str, Any] | None) -> dict[str, Any]:
    """The caller's bounds (its key's models, use cases, ceiling: tenants.caller) and, with tracing on, the
    front's span as the router's parent (options.traceparent)."""
    parent = tracing.traceparent()
    traced = RouteOptions(traceparent=parent).wire() if parent else {}
    return {**(options or {}), **current_options(), **traced}


def _preference(model: str) -> dict[str, str]:
    return {} if model == AUTO else {"model": model}


def decode_data_url(url: str, where: str, kind: str = "image") -> bytes:
    """The bytes of a base64 data URL (`data:image/png;base64,...`). Remote URLs are refused: the
    server fetches nothing on a client's behalf."""
    head, comma, data = url.partition(",")
    if not url.startswith("data:") or not comma:
        raise bad_request(where, f"expected a data URL (data:{kind}/...;base64,...), got {url[:40]!r}")
    if not head.endswith(";base64"):
        raise bad_request(where, "the data URL must be base64-encoded (;base64)")
    return decode_base64(data, where)


def decode_base64(data: str, where: str) -> bytes:
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(where, "not valid base64") from None
    if not raw:
        raise bad_request(where, "empty")
    return raw


def _turn(i: int, message: ChatMessage, attachments: dict[str, bytes], fields: dict[str, str]) -> Message:
    """One message as the router's turn: its text parts joined; its media parts into `attachments`; an
    assistant's tool calls (the contract's type already) and a tool result's call id as they came."""
    texts = []
    for j, part in enumerate(message.content):
        where = f"messages[{i}].content[{j}]"
        if part.type == "text":
            texts.append(part.text or "")
            continue
        kind = {"image_url": "image", "video_url": "video", "input_audio": "audio"}[part.type]
        if message.role != "user":
            raise bad_request(where, f"only user messages may carry {kind}")
        if kind in attachments:
            raise bad_request(where, f"one {kind} per request: the router takes a single {kind}")
        if part.image_url is not None or part.video_url is not None:
            url = part.image_url or part.video_url
            attachments[kind] = decode_data_url(url.url, f"{where}.{part.type}.url", kind)
        elif part.input_audio is not None:
            attachments[kind] = decode_base64(part.input_audio.data, f"{where}.input_audio.data")
        fields[kind] = where
    return Message(role="system" if message.role == "developer" else message.role, content="\n".join(texts),
                   tool_calls=message.tool_calls, tool_call_id=message.tool_call_id)


def chat_call(req: ChatCompletionRequest) -> RouterCall:
    """The conversation's text turns, its one image or audio part as the attachment of that kind, the
    sampling fields as the router's sampling_parameters, a model's name as a preference."""
    attachments: dict[str, bytes] = {}
    fields = {"text": "messages", "messages": "messages", "options.model": "model", "options.prefer": "prefer",
              "options.use_case": "use_case", **{f"options.{name}": name for name in AGENT}}
    turns = [_turn(i, message, attachments, fields) for i, message in enumerate(req.messages)]
    if turns[-1].role not in ("user", "tool"):
        raise bad_request(f"messages[{len(turns) - 1}].role",
                          "the last message must be the user's (the query) or a tool's result")
    sampling = {k: getattr(req, k) for k in SAMPLING_FIELDS if getattr(req, k) is not None}
    fields.update({f"{SAMPLING_OPTION}.{k}": k for k in sampling})
    if req.max_completion_tokens is not None:
        sampling["max_tokens"] = req.max_completion_tokens
        fields[f"{SAMPLING_OPTION}.max_tokens"] = "max_completion_tokens"
    passed = {k: getattr(req, k) for k in (*AGENT, "prefer", "use_case") if getattr(req, k) is not None}
    options: dict[str, Any] = {**_preference(req.model), "stream": req.stream, **passed}
    if sampling:
        options[SAMPLING] = sampling
    if len(turns) == 1 and turns[0].role == "user":  # the query alone: the router's plain text input
        return router_call(fields, turns[0].content, options, attachments)
    # The whole conversation; the router reads its last user turn as the query.
    return router_call(fields, "", options, attachments, turns)


# The router's tts speaks "the quoted part of a query, else what follows a colon, else the whole
# text" (model_router.routing.targets.what_to_say). OpenAI's `input` is what to say, all of it: quoted
# whole, with quotes it does not contain, it is the one quoted part and so the part spoken.
_QUOTES = (('"', '"'), ("“", "”"), ("'", "'"), ("‘", "’"))


def verbatim(text: str) -> str:
    """`text` phrased so that the router's tts speaks all of it."""
    for left, right in _QUOTES:
        if right not in text:
            return f"{left}{text}{right}"
    return text  # every quote mark in it (rare): the router's rule applies to it as it is


def speech_call(req: SpeechBody) -> RouterCall:
    return router_call({"text": "input", "options.model": "model"}, verbatim(req.input),
                       {"use_case": "tts", **_preference(req.model)})


def transcription_call(req: TranscriptionBody, audio: bytes) -> RouterCall:
    options: dict[str, Any] = {"use_case": "stt", **_preference(req.model)}
    if req.language is not None:
        options["language"] = req.language
    return router_call({"audio": "file", "text": "file", "options.model": "model", "options.language": "language"},
                       "", options, {"audio": audio})
