"""What a target is told to enforce: vLLM's `structured_outputs` (json | json_object | regex | choice).

The vLLM backend (r25.12 on) builds StructuredOutputsParams from `sampling_parameters.structured_outputs`,
a JSON string; our transformers backend takes the same. A forced tool call (tool_choice `required` or
named) is generation constrained to the tool-call object `{"name": ..., "arguments": {...}}`, so its
arguments always validate; `auto` lets the model choose and is parsed afterwards.

The grammar closes the objects a schema leaves open (`closed`), as OpenAI's strict mode requires: a
JSON schema allows any extra key where it does not say otherwise, and a small model under such a
grammar may keep adding keys until max_tokens. The client's schema itself is left as it came.
"""
from __future__ import annotations

from typing import Any

from ..contract.sampling import StructuredOutputs
from ..contract.tools import NamedChoice, ResponseFormat, Tool


# Keywords whose value is a schema, a list of schemas, or a map of names to schemas, that a part of
# the answer must match (`not`, `if` and `contains` only test it: closing them would change the test).
_ONE = ("items", "additionalItems", "additionalProperties", "unevaluatedItems", "unevaluatedProperties",
        "then", "else")
_LIST = ("anyOf", "oneOf", "allOf", "prefixItems", "items")
_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
# Siblings through which an object takes keys that `properties` does not list: closing it would refuse them.
_OPENERS = ("additionalProperties", "patternProperties", "unevaluatedProperties", "allOf", "anyOf", "oneOf",
            "$ref", "$dynamicRef", "if", "dependentSchemas", "dependencies")


def closed(schema: Any) -> Any:
    """`schema` (a copy) with `additionalProperties: false` on every object that lists its `properties`
    and says nothing about other keys. Left open: an object that takes keys some other way (see
    _OPENERS), requires a key it does not list, or is combined with others (a part of an `allOf`, an
    alternative beside `properties`, or the target of a `$ref` so used), which bring keys of their own."""
    return _close(schema, "#", _combined_refs(schema), closable=True)


def _close(node: Any, path: str, keep_open: set[str], closable: bool) -> Any:
    if not isinstance(node, dict):
        return node
    out = dict(node)
    for key in _ONE:
        if isinstance(node.get(key), dict):
            out[key] = _close(node[key], f"{path}/{key}", keep_open, True)
    for key in _LIST:  # the parts of an allOf, or alternatives beside `properties`, add to other keys
        if isinstance(node.get(key), list):
            alone = key in ("prefixItems", "items") or (key != "allOf" and "properties" not in node)
            out[key] = [_close(s, f"{path}/{key}/{i}", keep_open, alone) for i, s in enumerate(node[key])]
    for key in _MAP:
        if isinstance(node.get(key), dict):
            out[key] = {name: _close(s, f"{path}/{key}/{_pointer(name)}", keep_open, True)
                        for name, s in node[key].items()}
    props = node.get("properties")
    if (closable and path not in keep_open and isinstance(props, dict) and not any(k in node for k in _OPENERS)
            and set(node.get("required") or ()) <= set(props)):
        out["additionalProperties"] = False
    return out


def _pointer(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _combined_refs(node: Any) -> set[str]:
    """The `$ref`s whose target is combined with other schemas: a part of an `allOf`, or beside `properties`
    (itself, or as an alternative)."""
    refs: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str) and "properties" in node:
            refs.add(node["$ref"])
        for key in ("allOf", *(("anyOf", "oneOf") if "properties" in node else ())):
            for part in node.get(key) if isinstance(node.get(key), list) else ():
                if isinstance(part, dict) and isinstance(part.get("$ref"), str):
                    refs.add(part["$ref"])
        for key, value in node.items():
            if key not in ("const", "enum", "default", "examples"):  # data, not schemas
                refs |= _combined_refs(value)
    elif isinstance(node, list):
        for value in node:
            refs |= _combined_refs(value)
    return refs


def tool_call_schema(tool: Tool) -> dict[str, Any]:
    """The object a forced call to `tool` is: its name, and arguments under its (closed) parameters."""
    return {"type": "object", "properties": {"name": {"const": tool.function.name},
                                             "arguments": closed(tool.function.parameters)},
            "required": ["name", "arguments"], "additionalProperties": False}


def forced_tools(tools: tuple[Tool, ...], choice: Any) -> tuple[Tool, ...]:
    """The tools one of which must be called (none when the model may answer in words)."""
    if isinstance(choice, NamedChoice):
        return tuple(t for t in tools if t.function.name == choice.function.name)
    return tools if choice == "required" else ()


def structured_outputs(tools: tuple[Tool, ...], choice: Any,
                       response_format: ResponseFormat | None) -> StructuredOutputs | None:
    """The constraint of a request (None: free text)."""
    forced = forced_tools(tools, choice)
    if forced:
        schemas = [tool_call_schema(t) for t in forced]
        return StructuredOutputs(json=schemas[0] if len(schemas) == 1 else {"anyOf": schemas})
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return StructuredOutputs(json_object=True)
    return StructuredOutputs(json=closed(response_format.json_schema.schema_))
