"""Sampling parameters of the vLLM backend's contract, parsed and checked.

The vLLM backend takes `sampling_parameters` as a JSON object whose values may be numbers or
numeric strings; we accept the same subset that a small CPU model can honour and reject
everything else with an error that names the field and what is allowed. `structured_outputs` is
vLLM's (0.13) output constraint: exactly one of a JSON schema, any JSON object, a regex, a choice
of strings or a Lark grammar, as an object or (as the vLLM backend takes it) its JSON text; its
shape and size are checked here, its compilation by the engine. The limits that belong to a model
(max_tokens, a schema's size) come with the validation (`parse_sampling_parameters(raw, limits)`):
the router checks them per model before a load (routing.limits), the model's engine on arrival.
"""
from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..errors import InputError, describe
from .jsonfield import json_object
from .limits import ModelLimits

MAX_STOP_STRINGS = 8
MAX_GRAMMAR_CHARS = ModelLimits().max_schema_bytes  # a Lark grammar, as text
MAX_REGEX_CHARS = 4096
MAX_CHOICES, MAX_CHOICE_CHARS = 64, 512
# Accepted for compatibility with vLLM clients; they do not change generation here.
IGNORED = frozenset({"n", "best_of", "skip_special_tokens"})


class SamplingError(InputError):
    """A sampling parameter is unknown, of the wrong type or out of range."""


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):  # JSON true is no number, though Python's int would take it
        raise ValueError(f"expected a number, got {value!r}")
    return value


def _stop(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else list(value) if isinstance(value, tuple) else value
    if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items):
        raise ValueError(f"expected a non-empty string or a list of them, got {value!r}")
    if len(items) > MAX_STOP_STRINGS:
        raise ValueError(f"at most {MAX_STOP_STRINGS} strings, got {len(items)}")
    return tuple(items)


Int = Annotated[int, BeforeValidator(_no_bool)]
Float = Annotated[float, BeforeValidator(_no_bool)]


class StructuredOutputs(BaseModel):
    """What the output must match (vLLM's StructuredOutputsParams): exactly one key."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    json_schema: dict[str, Any] | None = Field(None, alias="json")  # a JSON schema (an object, or its JSON text)
    json_object: StrictBool | None = None  # any JSON object
    regex: str | None = Field(None, min_length=1, max_length=MAX_REGEX_CHARS)
    choice: list[Annotated[str, Field(min_length=1, max_length=MAX_CHOICE_CHARS)]] | None = Field(
        None, min_length=1, max_length=MAX_CHOICES)
    grammar: str | None = Field(None, min_length=1, max_length=MAX_GRAMMAR_CHARS)  # Lark syntax

    @field_validator("json_schema", mode="before")
    @classmethod
    def _schema(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON ({exc.msg} at position {exc.pos})") from None
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON schema (an object), got {type(value).__name__}")
        size, limit = len(json.dumps(value)), (info.context or {}).get("max_schema_bytes")
        if limit is not None and size > limit:
            raise ValueError(f"{size} bytes exceeds this model's limit of {limit}")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> StructuredOutputs:
        given = [self.kind_of(n) for n in type(self).model_fields if getattr(self, n) not in (None, False)]
        if len(given) != 1:
            raise ValueError(f"exactly one of {KINDS} is needed, got {given or 'none'}")
        return self

    @staticmethod
    def kind_of(name: str) -> str:
        return "json" if name == "json_schema" else name

    @property
    def kind(self) -> str:
        """The key that was given: json | json_object | regex | choice | grammar."""
        return next(self.kind_of(n) for n in type(self).model_fields if getattr(self, n) not in (None, False))


KINDS = ["json", "json_object", "regex", "choice", "grammar"]


class SamplingParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: Int = Field(128, ge=1)  # at most the serving model's max_output_tokens (validation context)
    temperature: Float = Field(0.0, ge=0.0, le=2.0)
    top_p: Float = Field(1.0, ge=1e-6, le=1.0)
    top_k: Int = Field(0, ge=-1, le=1000)
    repetition_penalty: Float = Field(1.0, ge=0.5, le=2.0)
    stop: Annotated[tuple[str, ...], BeforeValidator(_stop)] = ()
    seed: Int | None = Field(None, ge=0, le=2**32 - 1)
    ignore_eos: StrictBool = False  # generate max_tokens whatever the model says (benchmarks)
    structured_outputs: StructuredOutputs | None = None

    @field_validator("max_tokens")
    @classmethod
    def _within_limit(cls, value: int, info: ValidationInfo) -> int:
        limit = (info.context or {}).get("max_output_tokens")
        if limit is not None and value > limit:
            raise ValueError(f"{value} exceeds this model's limit of {limit}")
        return value

    @field_validator("top_k")
    @classmethod
    def _no_top_k(cls, value: int) -> int:
        return 0 if value == -1 else value  # vLLM's "no top-k" spelling

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def wire(self) -> dict[str, Any]:
        """As the vLLM backend takes them: what differs from the defaults, the constraint as its JSON text."""
        values = self.model_dump(mode="json", exclude_defaults=True, exclude={"structured_outputs"})
        if self.structured_outputs is not None:
            values["structured_outputs"] = json.dumps(self.structured_outputs.model_dump(
                mode="json", by_alias=True, exclude_none=True), ensure_ascii=False)
        return values


def parse_sampling_parameters(raw: str | bytes | dict | None, limits: ModelLimits | None = None) -> SamplingParams:
    """Parse the JSON `sampling_parameters` input, within a model's `limits` when given (a model's engine);
    raise SamplingError naming the bad field."""
    try:
        values = json_object(raw, "sampling_parameters")
    except InputError as exc:
        raise SamplingError(exc.field, str(exc).partition(": ")[2]) from None
    values = {k: v for k, v in values.items() if k not in IGNORED}
    context = limits.model_dump() if limits is not None else {}
    if values.get("structured_outputs") is not None:
        values["structured_outputs"] = _structured_outputs(values["structured_outputs"], context)
    try:
        return SamplingParams.model_validate(values, context=context)
    except ValidationError as exc:
        raise SamplingError(*describe(exc, SamplingParams, "sampling_parameters", "unknown parameter",
                                      known=set(SamplingParams.model_fields) | IGNORED)) from None


def _structured_outputs(raw: Any, context: dict[str, int]) -> StructuredOutputs:
    """Checked on its own, so that its errors name its keys and list its own choices."""
    field = "sampling_parameters.structured_outputs"
    # The vLLM backend takes it as JSON text (StructuredOutputsParams(**json.loads(value))); an object too.
    if not isinstance(raw, (str, dict)):
        raise SamplingError(field, f"expected a JSON object with one of {KINDS}, got {type(raw).__name__}")
    try:
        raw = json_object(raw, field)
    except InputError as exc:
        raise SamplingError(field, str(exc).partition(": ")[2]) from None
    try:
        return StructuredOutputs.model_validate(raw, context=context)
    except ValidationError as exc:
        path, problem = describe(exc, StructuredOutputs, field, "unknown key", known=KINDS)
        raise SamplingError(path.replace(".json_schema", ".json"), problem) from None
