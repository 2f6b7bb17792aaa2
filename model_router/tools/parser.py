"""Model output -> OpenAI tool calls, one parser for every target.

Two shapes reach it: Hermes' `<tool_call>{json}</tool_call>` blocks inside free text (tool_choice
`auto`; Qwen2.5's template asks for the same), and the bare JSON object (or array) of a forced
call, which constrained decoding guarantees. What is not a well-formed call stays text.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .constraint import forced_tools

if TYPE_CHECKING:
    from ..request import RouteOptions

_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


@dataclass(frozen=True)
class Parsed:
    content: str
    calls: list[dict[str, Any]]


def _call(obj: Any, names: set[str]) -> dict[str, Any] | None:
    if not isinstance(obj, dict) or obj.get("name") not in names:
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": obj["name"], "arguments": json.dumps(args, ensure_ascii=False)}}


def parse(text: str, names: set[str], forced: bool = False, parallel: bool = True) -> Parsed:
    """The tool calls in `text` (to functions in `names`) and the words left around them."""
    if forced:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        objs = data if isinstance(data, list) else [data]
        calls = [c for c in (_call(o, names) for o in objs) if c]
        if calls:
            return Parsed("", calls if parallel else calls[:1])
    calls, kept = [], []
    for match in _BLOCK.finditer(text):
        try:
            call = _call(json.loads(match.group(1)), names)
        except ValueError:
            call = None
        if call:
            calls.append(call)
    if not calls:
        return Parsed(text, [])
    kept = _BLOCK.sub("", text).strip()
    return Parsed(kept, calls if parallel else calls[:1])


def tool_calls(opts: RouteOptions, text: str) -> tuple[str, list[dict[str, Any]] | None]:
    """An answer's words and its tool calls (None when the request offered no tools or none was made)."""
    if not opts.wants_tools:
        return text, None
    forced = bool(forced_tools(tuple(opts.tools), opts.tool_choice))
    parsed = parse(text, {t.function.name for t in opts.tools}, forced, opts.parallel_tool_calls)
    return (parsed.content, parsed.calls) if parsed.calls else (text, None)
