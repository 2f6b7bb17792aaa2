"""Tools in a conversation for a chat template that does not take them (SmolLM2's): Hermes' format.

The tools go into the system turn as JSON signatures inside <tools></tools>, with the instruction
to answer a call as <tool_call>{"name": ..., "arguments": {...}}</tool_call>. Past calls and their
results are written back the same way, so that any template can render the conversation.
"""
from __future__ import annotations

import json
from typing import Any

from ..contract.tools import Tool

INSTRUCTION = ("You may call functions to help with the user's request. The functions are listed as "
               "JSON signatures within <tools></tools>:\n<tools>\n{tools}\n</tools>\n"
               "To call a function, answer with a JSON object with its name and arguments within "
               "<tool_call></tool_call> tags, one per call:\n"
               '<tool_call>\n{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>\n'
               "If no function is needed, answer in words.")


def system_text(tools: tuple[Tool, ...]) -> str:
    listed = "\n".join(json.dumps(t.model_dump(exclude_none=True), ensure_ascii=False) for t in tools)
    return INSTRUCTION.format(tools=listed)


def with_tools(turns: list[dict[str, Any]], tools: tuple[Tool, ...]) -> list[dict[str, Any]]:
    """`turns` as plain {role, content} turns, the tool instructions in the system turn (added in front,
    or after the client's own system text)."""
    out = []
    for turn in turns:
        role, content = turn["role"], turn.get("content") or ""
        if role == "assistant" and turn.get("tool_calls"):
            calls = [f'<tool_call>\n{{"name": {json.dumps(c["function"]["name"])}, "arguments": '
                     f'{c["function"]["arguments"]}}}\n</tool_call>' for c in turn["tool_calls"]]
            content = "\n".join(([content] if content else []) + calls)
        elif role == "tool":
            role, content = "user", f"<tool_response>\n{content}\n</tool_response>"
        out.append({"role": role, "content": content})
    if tools:
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{system_text(tools)}"}
        else:
            out.insert(0, {"role": "system", "content": system_text(tools)})
    return out


def template_turn(turn: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI turn as chat templates take it: a call's arguments as an object, not JSON text
    (Qwen2.5's template writes them with `tojson`, which would quote the text once more)."""
    if not turn.get("tool_calls"):
        return turn
    calls = []
    for call in turn["tool_calls"]:
        function = dict(call["function"])
        try:
            function["arguments"] = json.loads(function.get("arguments") or "{}")
        except ValueError:  # not JSON: the template gets the text as it came
            pass
        calls.append({**call, "function": function})
    return {**turn, "tool_calls": calls}
