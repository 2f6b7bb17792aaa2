"""The router's answer -> Anthropic's message (whole) and its parts, shared with the stream. Pure."""
from __future__ import annotations

import json
import uuid
from typing import Any

from model_router.contract.router import RouterAnswer

from .. import responses
from ..responses import ROUTING_FIELD

# The router's finish_reason (the engine's, or "tool_calls") -> Anthropic's stop_reason. The engine
# does not say whether a stop sequence or the end of the turn stopped it: both are "stop", so
# "end_turn", and stop_sequence stays null.
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def stop_reason(answer: RouterAnswer) -> str:
    return STOP_REASONS.get(responses.finish_reason(answer), "end_turn")


def tool_uses(answer: RouterAnswer) -> list[dict[str, Any]]:
    """The model's tool calls as tool_use blocks, each input the object its arguments hold."""
    return [{"type": "tool_use", "id": call.id, "name": call.function.name, "input": tool_input(call.function.arguments)}
            for call in responses.tool_calls(answer) or []]


def tool_input(arguments: str) -> dict[str, Any]:
    """A call's arguments as an object; a call max_tokens cut short (its JSON unfinished) as {}."""
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def content(text: str, uses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A text block (none when the model only called tools), then the tool_use blocks."""
    return ([{"type": "text", "text": text}] if text or not uses else []) + uses


def usage(answer: RouterAnswer) -> dict[str, int]:
    """The engine's own counts (0 for an answer that was not generated text)."""
    counts = answer.usage
    return {"input_tokens": counts.prompt_tokens if counts else 0,
            "output_tokens": counts.completion_tokens if counts else 0}


def message(mid: str, model: str, answer: RouterAnswer) -> dict[str, Any]:
    """The whole answer as Anthropic's message; `routing` (the router's decision) is ours."""
    return {**start(mid, model), "content": content(answer.text, tool_uses(answer)), "stop_reason": stop_reason(answer),
            "usage": usage(answer), ROUTING_FIELD: answer.decision}


def start(mid: str, model: str) -> dict[str, Any]:
    """A message before its content: what message_start carries (its usage is known at the end)."""
    return {"id": mid, "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": None,
            "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}
