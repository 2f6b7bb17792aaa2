"""Every request and response body, as OpenAI's API spells them (pydantic models).

OpenAI clients send fields we do not use (user, metadata, store, ...): `extra` is allowed and
ignored. What we use is validated, and what would change the answer but cannot be honoured here
(n > 1, logprobs, penalties, the legacy `functions`) is refused by name rather than silently ignored.
Tools, tool_choice, response_format, tool calls and usage are the contract's own types
(model_router.contract), read here as OpenAI's clients send them (`_as_sent`, `_as_echoed`); what
spans fields (unique names, a choice that exists, schemas that compile) the contract checks when
the router's request is built (translate.router_call), naming the client's field.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from model_router.contract.request import Feedback
from model_router.contract.router import Usage
from model_router.contract.tools import ResponseFormat, Tool, ToolCall, ToolChoice

AUTO = "auto"  # the model name that lets the router choose
# Inside a tool's function and a response format, a JSON schema is kept whole: null can mean
# something there ("default": null).
_SCHEMAS = ("parameters", "schema")


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class ImageUrl(_Body):
    url: str
    detail: str | None = None  # accepted; the router reads the image as it is


class InputAudio(_Body):
    data: str  # base64
    format: str = "wav"  # the router reads the container itself


class ContentPart(_Body):
    """One part of a message's content: text, an image or a video (data URLs; video_url as vLLM's
    OpenAI server spells it) or audio (base64)."""

    type: Literal["text", "image_url", "input_audio", "video_url"]
    text: str | None = None
    image_url: ImageUrl | None = None
    input_audio: InputAudio | None = None
    video_url: ImageUrl | None = None

    @model_validator(mode="after")
    def _has_its_field(self) -> ContentPart:
        if getattr(self, self.type) is None:
            raise ValueError(f"a {self.type!r} part needs its {self.type!r} field")
        return self


def _as_parts(value: Any) -> Any:
    """A plain string is one text part; no content (an assistant turn that only calls tools), none."""
    if value is None:
        return []
    return [{"type": "text", "text": value}] if isinstance(value, str) else value


def _as_sent(value: Any) -> Any:
    """An object as the contract's type reads it: OpenAI's clients send null for a field they leave
    unset, so null fields are left out (a schema inside is kept whole)."""
    if not isinstance(value, dict):
        return value
    return {k: v if k in _SCHEMAS else _as_sent(v) for k, v in value.items() if v is not None}


def _as_echoed(value: Any) -> Any:
    """A tool call an assistant turn made, as the SDKs send it back: without the `index` of a call
    assembled from a stream and the `parsed_arguments` of the SDK's parse helpers (both restate the
    call); any other key is refused by the contract."""
    if not isinstance(value, dict):
        return value
    call = {k: v for k, v in value.items() if k != "index"}
    if isinstance(call.get("function"), dict):
        call["function"] = {k: v for k, v in call["function"].items() if k != "parsed_arguments"}
    return _as_sent(call)


class ChatMessage(_Body):
    # "developer" is OpenAI's newer name for the system turn; "tool" carries a tool's result.
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Annotated[list[ContentPart], BeforeValidator(_as_parts)] = Field(default_factory=list)
    tool_calls: list[Annotated[ToolCall, BeforeValidator(_as_echoed)]] | None = None  # an assistant's calls
    tool_call_id: str | None = None  # a tool turn: the call it answers

    @model_validator(mode="after")
    def _tool_turn_names_its_call(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a 'tool' message needs its 'tool_call_id'")
        return self


def _refuse_when(present: bool, problem: str) -> None:
    if present:
        raise ValueError(problem)


class ChatCompletionRequest(_Body):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    # Ours: the router's trade-off (options.prefer) and its use case, when the client knows better.
    prefer: Literal["quality", "balanced", "cost"] | None = None
    use_case: str | None = None
    # Sampling: passed on as they are; the router checks their ranges and names the field.
    max_tokens: int | None = None
    max_completion_tokens: int | None = None  # OpenAI's newer name for max_tokens
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    # Not OpenAI's, but vLLM's OpenAI server takes them too.
    top_k: int | None = None
    repetition_penalty: float | None = None
    ignore_eos: bool | None = None  # generate max_tokens whatever the model says (benchmarks, tests)
    # Agents: the contract's types, passed on as they are; what spans fields is checked with the router's request.
    tools: list[Annotated[Tool, BeforeValidator(_as_sent)]] | None = None
    tool_choice: ToolChoice | None = None  # "none", "auto", "required" or a named function
    parallel_tool_calls: bool | None = None
    response_format: Annotated[ResponseFormat | None, BeforeValidator(_as_sent)] = None
    # Accepted only at the values that change nothing.
    n: int = 1
    functions: list[Any] | None = None
    function_call: Any = None
    logprobs: bool | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int) -> int:
        _refuse_when(value != 1, f"{value} is not supported: one choice per request")
        return value

    @field_validator("functions", "function_call")
    @classmethod
    def _no_legacy_functions(cls, value: Any) -> Any:
        _refuse_when(value is not None, "OpenAI's legacy function calling is not supported: use tools and tool_choice")
        return value

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: bool | None) -> bool | None:
        _refuse_when(bool(value), "not supported")
        return value

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalty(cls, value: float | None) -> float | None:
        _refuse_when(bool(value), f"{value} is not supported: only 0 (repetition_penalty is)")
        return value

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class SpeechBody(_Body):
    """OpenAI's speech request (what the route reads; the router's own is contract.media.SpeechRequest)."""

    model: str = Field(min_length=1)
    input: str = Field(min_length=1)
    voice: Any = None  # required by OpenAI's SDK; the router picks the voice for the language
    response_format: Literal["wav"] = "wav"


class TranscriptionBody(_Body):
    """The form fields of OpenAI's transcription request; the file itself is read from the form apart."""

    model: str = Field(min_length=1)
    language: str | None = None
    response_format: Literal["json", "text"] = "json"


# -- responses ------------------------------------------------------------------------------------
class AudioOut(BaseModel):
    id: str
    data: str  # base64 WAV
    expires_at: int
    transcript: str


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ToolCall] | None = None
    audio: AudioOut | None = None
    # Ours: the lip-sync timeline of the audio [{start, end, phoneme, viseme}] (avatar).
    visemes: list[dict[str, Any]] | None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class _Completion(BaseModel):
    """What a whole answer and a stream chunk share."""

    id: str
    created: int
    model: str
    usage: Usage | None = None


class ChatCompletion(_Completion):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[Choice]
    routing: dict[str, Any] = Field(default_factory=dict)  # ours: the router's decision


class FunctionFragment(BaseModel):
    name: str | None = None
    arguments: str = ""


class ToolCallDelta(BaseModel):
    """A streamed tool call: the first names it (id, name), those after carry its arguments in pieces."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionFragment


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    audio: dict[str, Any] | None = None          # speech the router made, whole, on the last content chunk
    visemes: list[dict[str, Any]] | None = None  # ours: its lip-sync timeline


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(_Completion):
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChunkChoice]
    routing: dict[str, Any] | None = None  # ours, on the last chunk with a choice


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    description: str | None = None
    use_cases: list[str] | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Transcription(BaseModel):
    text: str
    routing: dict[str, Any] = Field(default_factory=dict)


# Ours: POST /v1/feedback takes the router's own option as its body, {decision_id, score} (extra keys
# refused), and answers FeedbackRecorded.
FeedbackBody = Feedback


class FeedbackRecorded(BaseModel):
    decision_id: str
    score: float
    recorded: bool


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    router_ready: bool
