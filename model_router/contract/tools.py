"""The tools, tool_choice and response_format of a request, and the tool calls of a conversation
(OpenAI's shapes, one definition for the OpenAI front and the router), validated.

A schema is checked twice before anything reaches an engine: as JSON Schema (jsonschema's
check_schema) and by the grammar engine that will enforce it (llguidance, as our backend uses it,
validates it without a tokenizer), so that an engine never meets a schema it cannot compile.
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from ..errors import InputError

MAX_TOOLS = 64
# All of a request's schemas together, as JSON: no more is compiled (the largest compiles in a fraction
# of a second). Each model takes less (its limits.max_schema_bytes, 64 KiB unless its config says),
# checked by the router before a load, naming the tool at fault.
MAX_SCHEMA_BYTES = 256 * 1024
NAME_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Function(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = Field(None, max_length=4096)
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


class Tool(_Strict):
    type: Literal["function"]
    function: Function


class NamedFunction(_Strict):
    name: str


class NamedChoice(_Strict):
    type: Literal["function"]
    function: NamedFunction


class JsonSchema(_Strict):
    name: str = Field("response", pattern=NAME_PATTERN)
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchema | None = None


class FunctionCall(_Strict):
    name: str = Field(min_length=1)
    arguments: str  # JSON text, as the model wrote it


class ToolCall(_Strict):
    """A call an assistant turn made: in a conversation, and in an answer."""

    id: str = Field(min_length=1, max_length=128)
    type: Literal["function"] = "function"
    function: FunctionCall


CHOICES = ("none", "auto", "required")
_NAMED = '{"type": "function", "function": {"name": ...}}'


def _choice(value: Any) -> Any:
    """"none" | "auto" | "required" | {"type": "function", "function": {"name": ...}}, said in one message."""
    if isinstance(value, str):
        if value not in CHOICES:
            raise ValueError(f"{value!r} unknown. Available: {list(CHOICES)} or {_NAMED}")
        return value
    if isinstance(value, NamedChoice):
        return value
    if isinstance(value, dict):
        try:
            return NamedChoice.model_validate(value)
        except ValidationError:
            pass  # said below, whatever part of it is wrong
    raise ValueError(f"expected one of {list(CHOICES)} or {_NAMED}, got {value!r}")


ToolChoice = Annotated[Any, BeforeValidator(_choice)]


def check_tools(tools: tuple[Tool, ...], choice: Any, response_format: ResponseFormat | None) -> None:
    """The checks across fields: unique names, a named choice that exists, sizes, compilable schemas."""
    if len(tools) > MAX_TOOLS:
        raise InputError("options.tools", f"{len(tools)} tools exceeds the limit of {MAX_TOOLS}")
    seen: dict[str, int] = {}
    for i, tool in enumerate(tools):
        if tool.function.name in seen:
            raise InputError(f"options.tools[{i}].function.name",
                             f"{tool.function.name!r} is also the name of tools[{seen[tool.function.name]}]")
        seen[tool.function.name] = i
    if isinstance(choice, NamedChoice) and choice.function.name not in seen:
        raise InputError("options.tool_choice.function.name",
                         f"{choice.function.name!r} unknown. Available: {sorted(seen)}")
    if choice is not None and choice != "none" and not tools:
        raise InputError("options.tool_choice", "needs options.tools")
    schemas = {f"options.tools[{i}].function.parameters": t.function.parameters for i, t in enumerate(tools)}
    if response_format is not None and response_format.type == "json_schema":
        if response_format.json_schema is None:
            raise InputError("options.response_format.json_schema", "required with type 'json_schema'")
        schemas["options.response_format.json_schema.schema"] = response_format.json_schema.schema_
    size = sum(len(json.dumps(s)) for s in schemas.values())
    if size > MAX_SCHEMA_BYTES:
        raise InputError("options.tools" if tools else "options.response_format",
                         f"{size} bytes of JSON schema exceeds the limit of {MAX_SCHEMA_BYTES}")
    for field, schema in schemas.items():
        check_schema(json.dumps(schema, sort_keys=True), field)


@lru_cache(maxsize=256)
def check_schema(schema: str, field: str) -> None:
    """InputError naming `field` when `schema` is not a JSON Schema, or one the grammar engine cannot compile."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(json.loads(schema))
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        raise InputError(field, f"not a valid JSON schema{f' at {where}' if where else ''}: {exc.message}") from None
    try:
        from llguidance import LLMatcher
    except ImportError:  # no grammar engine in this process: the engine's own check stands
        return
    try:
        problem = LLMatcher.validate_grammar(LLMatcher.grammar_from_json_schema(schema))
    except (ValueError, RuntimeError) as exc:
        problem = str(exc)
    if problem:
        raise InputError(field, f"the grammar engine cannot compile this schema: {' '.join(problem.split())[:300]}")
