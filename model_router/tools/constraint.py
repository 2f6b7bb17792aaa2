"""What a target is told to enforce: vLLM's `structured_outputs` (json | json_object | regex | choice).

The vLLM backend (r25.12 on) builds StructuredOutputsParams from `sampling_parameters.structured_outputs`,
a JSON string; our transformers backend takes the same. A forced tool call (tool_choice `required` or
named) is generation constrained to the tool-call object `{"name": ..., "arguments": {...}}`, so its
arguments always validate; `auto` lets the model choose and is parsed afterwards.
"""
from __future__ import annotations

import json
from typing import Any

from .spec import NamedChoice, ResponseFormat, Tool


def tool_call_schema(tool: Tool) -> dict[str, Any]:
    return {"type": "object", "properties": {"name": {"const": tool.function.name},
                                             "arguments": tool.function.parameters},
            "required": ["name", "arguments"], "additionalProperties": False}


def forced_tools(tools: tuple[Tool, ...], choice: Any) -> tuple[Tool, ...]:
    """The tools one of which must be called (none when the model may answer in words)."""
    if isinstance(choice, NamedChoice):
        return tuple(t for t in tools if t.function.name == choice.function.name)
    return tools if choice == "required" else ()


def structured_outputs(tools: tuple[Tool, ...], choice: Any, response_format: ResponseFormat | None) -> dict | None:
    """The constraint of a request (None: free text)."""
    forced = forced_tools(tools, choice)
    if forced:
        schemas = [tool_call_schema(t) for t in forced]
        return {"json": schemas[0] if len(schemas) == 1 else {"anyOf": schemas}}
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return {"json_object": True}
    return {"json": response_format.json_schema.schema_}


def as_sampling(constraint: dict | None) -> dict[str, str]:
    """The sampling_parameters entry that carries it, in the vLLM backend's form (a JSON string)."""
    return {"structured_outputs": json.dumps(constraint)} if constraint else {}
