"""Every request and response body, as OpenAI's API spells them (pydantic models).

OpenAI clients send fields we do not use (user, metadata, store, ...): `extra` is allowed and
ignored. What we use is validated, and what would change the answer but cannot be honoured here
(n > 1, logprobs, penalties, the legacy `functions`) is refused by name rather than silently ignored.
Tools and response formats are checked here for their outline only; the router checks the rest
(names, schemas, the choice) and names the field.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

AUTO = "auto"  # the model name that lets the router choose


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


class FunctionCall(_Body):
    name: str
    arguments: str  # JSON, as the model wrote it


class ToolCall(_Body):
    """A call an assistant turn made, as OpenAI spells it in requests and answers."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Body):
    # "developer" is OpenAI's newer name for the system turn; "tool" carries a tool's result.
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Annotated[list[ContentPart], BeforeValidator(_as_parts)] = Field(default_factory=list)
    tool_calls: list[ToolCall] | None = None  # an assistant's calls
    tool_call_id: str | None = None  # a tool turn: the call it answers

    @model_validator(mode="after")
    def _tool_turn_names_its_call(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a 'tool' message needs its 'tool_call_id'")
        return self


class Tool(_Body):
    """A function the model may call: {"type": "function", "function": {name, description, parameters, strict}}."""

    type: Literal["function"]
    function: dict[str, Any]


TOOL_CHOICES = ("none", "auto", "required")


class ResponseFormat(_Body):
    """{"type": "text" | "json_object"}, or {"type": "json_schema", "json_schema": {name, schema, strict}}."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


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
    # Agents: passed on as they are (nulls dropped); the router checks them and names the field.
    tools: list[Tool] | None = None
    tool_choice: Any = None  # one of TOOL_CHOICES or {"type": "function", "function": {"name": ...}}
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
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

    @field_validator("tool_choice")
    @classmethod
    def _a_choice_or_a_function(cls, value: Any) -> Any:
        """A word or a named function; whether the name is one of the tools, the router checks."""
        if isinstance(value, str):
            _refuse_when(value not in TOOL_CHOICES, f"{value!r} unknown. Available: {list(TOOL_CHOICES)}")
        else:
            _refuse_when(value is not None and not (isinstance(value, dict) and value.get("type") == "function"),
                         f'expected one of {list(TOOL_CHOICES)} or {{"type": "function", "function": {{"name": ...}}}}'
                         f", got {value!r}")
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


class SpeechRequest(_Body):
    model: str = Field(min_length=1)
    input: str = Field(min_length=1)
    voice: Any = None  # required by OpenAI's SDK; the router picks the voice for the language
    response_format: Literal["wav"] = "wav"


class TranscriptionRequest(_Body):
    """The form fields of a transcription; the file itself is read from the form apart."""

    model: str = Field(min_length=1)
    language: str | None = None
    response_format: Literal["json", "text"] = "json"


# -- responses ------------------------------------------------------------------------------------
class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


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


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    router_ready: bool
