"""The body of POST /v1/responses, as OpenAI's Responses API spells it (pydantic).

What we use is validated; what the official SDKs send and changes nothing here (metadata, user,
truncation, prompt caching, service tier, include, reasoning for models that do not reason) is
accepted and listed in NO_OPS; anything else a caller sets, which we cannot honour, is refused by
name rather than silently ignored.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

# Accepted at any value: they change nothing in the answer (README lists them).
NO_OPS = ("user", "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options", "safety_identifier",
          "service_tier", "stream_options")
# What `include` may ask for that changes nothing: our models do not reason, so there is none to include.
INCLUDABLE = ("reasoning.encrypted_content",)
MAX_METADATA, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512  # OpenAI's limits


class _Item(BaseModel):
    model_config = ConfigDict(extra="allow")  # ids, statuses and annotations of items echoed back


class ContentPart(_Item):
    """A part of a message: text (input_text; output_text or refusal when an assistant turn is sent back)
    or an image (input_image, as a data URL)."""

    type: Literal["input_text", "output_text", "refusal", "input_image"]
    text: str | None = None
    refusal: str | None = None
    image_url: str | None = None
    file_id: None = None  # files are not kept here: an image comes as a data URL
    detail: str | None = None  # accepted; the router reads the image as it is

    @model_validator(mode="after")
    def _has_its_field(self) -> ContentPart:
        needs = {"input_image": "image_url", "refusal": "refusal"}.get(self.type, "text")
        if getattr(self, needs) is None:
            raise ValueError(f"a {self.type!r} part needs its {needs!r} field")
        return self


def _as_parts(value: Any) -> Any:
    """A plain string is one text part."""
    return [{"type": "input_text", "text": value}] if isinstance(value, str) else value


Parts = Annotated[list[ContentPart], BeforeValidator(_as_parts)]


class MessageItem(_Item):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: Parts


class FunctionCallItem(_Item):
    """A call the model made, sent back with its output (when the client keeps the history itself)."""

    type: Literal["function_call"]
    call_id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1)
    arguments: str


class FunctionCallOutputItem(_Item):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1, max_length=128)
    output: Parts


def _item_type(value: Any) -> str:
    return value.get("type", "message") if isinstance(value, dict) else getattr(value, "type", "message")


Item = MessageItem | FunctionCallItem | FunctionCallOutputItem
ITEM_TYPES = {"message": MessageItem, "function_call": FunctionCallItem, "function_call_output": FunctionCallOutputItem}


class FunctionTool(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamedFunction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["function"]
    name: str


class TextFormat(BaseModel):
    """text.format: plain text, any JSON object, or JSON valid against a schema."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    description: str | None = None
    strict: bool | None = None

    @model_validator(mode="after")
    def _schema_with_its_type(self) -> TextFormat:
        if (self.type == "json_schema") != (self.schema_ is not None):
            raise ValueError(f"'schema' goes with type 'json_schema' (and only with it); type is {self.type!r}")
        return self


class Reasoning(BaseModel):
    """Our models do not reason: only a request for none changes nothing."""

    model_config = ConfigDict(extra="forbid")

    effort: Literal["none", "minimal"] | None = None
    summary: None = None
    generate_summary: None = None


def _tool_choice(value: Any) -> Any:
    if isinstance(value, dict) and value.get("type") != "function":
        raise ValueError(f"{value.get('type')!r} not supported. Available: 'none', 'auto', 'required' or "
                         "{'type': 'function', 'name': ...}")
    return value


def _items_are_objects(value: Any) -> Any:
    if isinstance(value, list):
        bad = next((i for i, item in enumerate(value) if not isinstance(item, dict)), None)
        if bad is not None:
            raise ValueError(f"item {bad} is a {type(value[bad]).__name__}: expected a string or a list of items")
    return value


def _metadata(value: Any) -> Any:
    """OpenAI's metadata: at most 16 pairs of strings, keys of 64 and values of 512 characters at most."""
    if value is None:
        return value
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError("expected an object of strings")
    if len(value) > MAX_METADATA:
        raise ValueError(f"{len(value)} pairs exceeds the limit of {MAX_METADATA}")
    if any(len(k) > MAX_METADATA_KEY or len(v) > MAX_METADATA_VALUE for k, v in value.items()):
        raise ValueError(f"keys are limited to {MAX_METADATA_KEY} characters and values to {MAX_METADATA_VALUE}")
    return value


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: TextFormat | None = None
    verbosity: Literal["medium"] | None = None  # the only one our models have


def _refuse(value: Any, allowed: Any, problem: str) -> None:
    if value is not None and value != allowed:
        raise ValueError(problem)


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: Annotated[str | list[dict[str, Any]], BeforeValidator(_items_are_objects)] = Field(min_length=1)
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool | None = None  # OpenAI keeps a response unless told not to
    stream: bool = False
    tools: list[FunctionTool] | None = None
    tool_choice: Annotated[Literal["none", "auto", "required"] | NamedFunction | None,
                           BeforeValidator(_tool_choice)] = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    # Ours, as on Chat Completions: the router's trade-off and the use case, when the client knows better.
    prefer: Literal["quality", "balanced", "cost"] | None = None
    use_case: str | None = None
    metadata: Annotated[dict[str, str] | None, BeforeValidator(_metadata)] = None  # echoed back
    # Accepted only at the values that change nothing.
    background: bool | None = None
    top_logprobs: int | None = None
    truncation: Literal["disabled"] | None = None  # a conversation too long is refused, never cut
    include: list[Literal[INCLUDABLE]] | None = None  # type: ignore[valid-type]
    reasoning: Reasoning | None = None

    @field_validator("background")
    @classmethod
    def _answered_while_waiting(cls, value: bool | None) -> bool | None:
        _refuse(value, False, "not supported: answers are given while the request waits")
        return value

    @field_validator("top_logprobs")
    @classmethod
    def _no_logprobs(cls, value: int | None) -> int | None:
        _refuse(value, 0, "not supported")
        return value

    def unsupported(self) -> str | None:
        """The first field set that this server does not know and so cannot honour."""
        return next((name for name, value in (self.model_extra or {}).items()
                     if name not in NO_OPS and value not in (None, [], {}, "")), None)

    @property
    def keep(self) -> bool:
        return self.store is not False
