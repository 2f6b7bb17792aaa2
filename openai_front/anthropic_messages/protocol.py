"""The body of POST /v1/messages, as Anthropic's Messages API spells it (pydantic models).

Every field Anthropic's API defines is known here: those we honour; those accepted as no-ops
because they change nothing in the answer here (`cache_control` anywhere, `metadata`,
`service_tier`, `speed: "standard"`, `thinking: {"type": "disabled"}`, `user_profile_id`,
`workspace_id`); and those accepted only unset because what they ask for is not done here
(UNSUPPORTED, `thinking` on, `speed: "fast"`, server tools, blocks other than BLOCK_TYPES),
refused by name when set. A key Anthropic's API does not define is refused too, as Anthropic
refuses it. What spans blocks (a tool_use only in an assistant turn, one image per
request) is checked by translate.py, naming the block.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator,
                      model_validator)

BLOCK_TYPES = ("text", "image", "tool_use", "tool_result")
MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
# The fields each block type has (beside type and cache_control).
_BLOCK_FIELDS = {"text": {"text"}, "image": {"source"}, "tool_use": {"id", "name", "input"},
                 "tool_result": {"tool_use_id"}}
_BLOCK_OPTIONAL = {"tool_result": {"content", "is_error"}}
# Accepted only unset (null, false or empty): what each asks for is not done here.
UNSUPPORTED = {
    "citations": "citations (no answer here cites documents)", "caller": "programmatic tool calling",
    "toolset_name": "toolsets", "transformations": "image transformations", "input_examples": "tool input examples",
    "allowed_callers": "programmatic tool calling", "defer_loading": "tool search (deferred tools)",
    "eager_input_streaming": "eager input streaming (a call's input streams once it is whole)",
    "effort": "effort levels", "container": "code-execution containers", "diagnostics": "prompt-cache diagnostics",
    "inference_geo": "choosing where inference runs",
}


def _unset(value: Any, info: ValidationInfo) -> Any:
    if value not in (None, False, "", [], {}):
        raise ValueError(f"not supported: {UNSUPPORTED[info.field_name]}")
    return value


Unsupported = Annotated[Any, AfterValidator(_unset)]


def _as_blocks(value: Any) -> Any:
    """A plain string is one text block, as Anthropic reads it."""
    return [{"type": "text", "text": value}] if isinstance(value, str) else value


class _Strict(BaseModel):
    """A nested object: a key Anthropic's API does not define is refused, naming it and those it has."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @model_validator(mode="after")
    def _no_unknown_keys(self) -> _Strict:
        if self.model_extra:
            known = sorted(f.alias or n for n, f in type(self).model_fields.items())
            raise ValueError(f"unknown field {sorted(self.model_extra)[0]!r}. Available: {known}")
        return self


class ImageSource(_Strict):
    type: str
    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    file_id: str | None = None

    @model_validator(mode="after")
    def _base64_only(self) -> ImageSource:
        if self.type == "url":
            raise ValueError("an image by URL is not fetched (the server fetches nothing on a client's behalf): "
                             "send it as {'type': 'base64', 'media_type', 'data'}")
        if self.type != "base64":
            raise ValueError(f"{self.type!r} sources are not supported: send the image as base64")
        if self.media_type not in MEDIA_TYPES or not self.data:
            raise ValueError(f"a base64 source needs 'data' and a 'media_type' of {list(MEDIA_TYPES)}")
        return self


class Block(_Strict):
    """One content block: text, an image (base64), a tool_use (an assistant's call) or a tool_result."""

    type: str
    text: str | None = None
    source: ImageSource | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    tool_use_id: str | None = None
    content: Annotated[list[Block] | None, BeforeValidator(_as_blocks)] = None
    is_error: bool | None = None
    cache_control: Any = None  # no-op: there is no prompt cache to mark
    citations: Unsupported = None
    caller: Unsupported = None
    toolset_name: Unsupported = None
    transformations: Unsupported = None

    @field_validator("type")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value not in BLOCK_TYPES:
            raise ValueError(f"{value!r} blocks are not supported. Available: {list(BLOCK_TYPES)}")
        return value

    @model_validator(mode="after")
    def _fields_of_its_type(self) -> Block:
        own = _BLOCK_FIELDS[self.type]
        missing = sorted(n for n in own if getattr(self, n) is None)
        if missing:
            raise ValueError(f"a {self.type!r} block needs {missing}")
        allowed = own | _BLOCK_OPTIONAL.get(self.type, set())
        foreign = sorted(n for n in ("text", "source", "id", "name", "input", "tool_use_id", "content", "is_error")
                         if n not in allowed and getattr(self, n) is not None)
        if foreign:
            raise ValueError(f"{foreign[0]!r} is not a field of a {self.type!r} block")
        return self


class MessageBody(_Strict):
    role: Literal["user", "assistant", "system"]
    content: Annotated[list[Block], BeforeValidator(_as_blocks)]


class ToolDef(_Strict):
    """A client tool (name, description, input_schema); Anthropic's server tools are not run here."""

    type: str | None = None
    name: str
    description: str | None = None
    input_schema: dict[str, Any]
    strict: bool | None = None
    cache_control: Any = None  # no-op
    input_examples: Unsupported = None
    allowed_callers: Unsupported = None
    defer_loading: Unsupported = None
    eager_input_streaming: Unsupported = None

    @field_validator("type")
    @classmethod
    def _custom(cls, value: str | None) -> str | None:
        if value not in (None, "custom"):
            raise ValueError(f"{value!r} is a server tool, not run here: only client tools "
                             "({'name', 'description', 'input_schema'}) are supported")
        return value


class ToolChoiceBody(_Strict):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None

    @model_validator(mode="after")
    def _name_with_tool(self) -> ToolChoiceBody:
        if (self.type == "tool") != (self.name is not None):
            raise ValueError("'name' is required with type 'tool', and only with it")
        return self


class OutputFormat(_Strict):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(_Strict):
    format: OutputFormat | None = None
    effort: Unsupported = None


def _no_thinking(value: Any) -> Any:
    if value is not None and value != {"type": "disabled"}:
        raise ValueError("not supported: the models here do not think in separate blocks; "
                         "leave it unset or send {'type': 'disabled'}")
    return value


class MessagesRequest(BaseModel):
    """POST /v1/messages: Anthropic's fields, and ours (`prefer`, `use_case`) as on chat completions."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)  # "auto": the router chooses; else a model the router knows
    max_tokens: int  # required, as Anthropic requires it
    messages: list[MessageBody] = Field(min_length=1)
    system: Annotated[list[Block], BeforeValidator(_as_blocks)] = Field(default_factory=list)
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stream: bool = False
    tools: list[ToolDef] | None = None
    tool_choice: ToolChoiceBody | None = None
    output_config: OutputConfig | None = None
    thinking: Annotated[Any, AfterValidator(_no_thinking)] = None
    speed: Literal["standard"] | None = None  # "fast" is refused: one speed here
    # No-ops.
    metadata: dict[str, Any] | None = None
    cache_control: Any = None
    service_tier: Literal["auto", "standard_only"] | None = None
    user_profile_id: str | None = None
    workspace_id: str | None = None
    # Refused when set.
    container: Unsupported = None
    diagnostics: Unsupported = None
    inference_geo: Unsupported = None
    # Ours: the router's trade-off (options.prefer) and its use case, when the client knows better.
    prefer: Literal["quality", "balanced", "cost"] | None = None
    use_case: str | None = None
