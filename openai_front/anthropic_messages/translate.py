"""Anthropic's Messages body -> the router's call (the same RouterRequest as chat completions). Pure.

`system` and system messages become system turns; a user message's text blocks its user turn, its
image the request's image, each of its tool_result blocks a tool turn (before the user's words, as
Anthropic orders them); an assistant's tool_use blocks its tool calls (OpenAI's shape, the contract's).
Each router field is mapped to the field the client sent, so that the router's errors name it.
"""
from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from model_router.contract.generation import SAMPLING
from model_router.contract.request import Message
from model_router.contract.tools import FunctionCall, ToolCall
from model_router.errors import describe

from ..errors import bad_request
from ..protocol import AUTO
from ..translate import SAMPLING_OPTION, RouterCall, decode_base64, router_call
from .protocol import Block, MessageBody, MessagesRequest

# The router's sampling parameter -> Anthropic's field.
SAMPLING_FIELDS = {"max_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
                   "stop": "stop_sequences"}
IS_ERROR = "Error: "  # a tool_result with is_error: the router's tool turn has no flag, its text says so


def messages_call(req: MessagesRequest) -> RouterCall:
    """The conversation as the router's turns (the query alone as its text), sampling as its
    sampling_parameters, tools and tool_choice and output_config.format as the contract's options."""
    fields = {"text": "messages", "messages": "messages", "options.model": "model", "options.prefer": "prefer",
              "options.use_case": "use_case"}
    attachments: dict[str, bytes] = {}
    turns = conversation(req, attachments, fields)
    sampling = {name: getattr(req, sent) for name, sent in SAMPLING_FIELDS.items() if getattr(req, sent) is not None}
    if not req.stop_sequences:
        sampling.pop("stop", None)
    fields.update({f"{SAMPLING_OPTION}.{name}": SAMPLING_FIELDS[name] for name in sampling})
    options: dict[str, Any] = {"stream": req.stream, SAMPLING: sampling,
                               **{k: getattr(req, k) for k in ("prefer", "use_case") if getattr(req, k) is not None}}
    if req.model != AUTO:
        options["model"] = req.model
    options.update(agent_options(req, fields))
    if len(turns) == 1 and turns[0].role == "user":  # the query alone: the router's plain text input
        return router_call(fields, turns[0].content, options, attachments)
    return router_call(fields, "", options, attachments, turns)


def agent_options(req: MessagesRequest, fields: dict[str, str]) -> dict[str, Any]:
    """tools, tool_choice, parallel_tool_calls and response_format, as the contract's options."""
    options: dict[str, Any] = {}
    if req.tools is not None:
        options["tools"] = [{"type": "function", "function": {
            "name": t.name, "parameters": t.input_schema,
            **{k: v for k, v in (("description", t.description), ("strict", t.strict)) if v is not None}}}
            for t in req.tools]
        fields["options.tools"] = "tools"
        for i in range(len(req.tools)):
            fields[f"options.tools[{i}].function"] = f"tools[{i}]"
            fields[f"options.tools[{i}].function.parameters"] = f"tools[{i}].input_schema"
    choice = req.tool_choice
    if choice is not None:
        options["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}.get(
            choice.type, {"type": "function", "function": {"name": choice.name}})
        fields.update({"options.tool_choice": "tool_choice", "options.tool_choice.function.name": "tool_choice.name"})
        if choice.disable_parallel_tool_use is not None:
            options["parallel_tool_calls"] = not choice.disable_parallel_tool_use
            fields["options.parallel_tool_calls"] = "tool_choice.disable_parallel_tool_use"
    fmt = req.output_config.format if req.output_config else None
    if fmt is not None:
        options["response_format"] = {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt.schema_}}
        fields.update({"options.response_format": "output_config.format",
                       "options.response_format.json_schema.schema": "output_config.format.schema"})
    return options


def conversation(req: MessagesRequest, attachments: dict[str, bytes], fields: dict[str, str]) -> list[Message]:
    """The router's turns, each mapped (in `fields`) to the message or block it came from."""
    turns: list[Message] = []
    if req.system:
        fields["messages[0]"] = "system"
        turns.append(Message(role="system", content=texts(req.system, "system")))
    for i, message in enumerate(req.messages):
        for where, turn in message_turns(i, message, attachments, fields):
            fields[f"messages[{len(turns)}]"] = where
            if turn.role == "tool":
                fields[f"messages[{len(turns)}].tool_call_id"] = f"{where}.tool_use_id"
            turns.append(turn)
    if turns[-1].role not in ("user", "tool"):
        raise bad_request(f"messages[{len(req.messages) - 1}].role", "the last message must be the user's "
                          "(its words or tool results): an assistant's prefill is not supported")
    return turns


def message_turns(i: int, message: MessageBody, attachments: dict[str, bytes],
                  fields: dict[str, str]) -> list[tuple[str, Message]]:
    """One Anthropic message as router turns, each with the client field it came from."""
    where = f"messages[{i}]"
    kinds = {"user": ("text", "image", "tool_result"), "assistant": ("text", "tool_use"), "system": ("text",)}
    for j, block in enumerate(message.content):
        if block.type not in kinds[message.role]:
            raise bad_request(f"{where}.content[{j}].type", f"a {block.type!r} block in a {message.role!r} message: "
                              f"its blocks are {list(kinds[message.role])}")
    text = "\n".join(b.text or "" for b in message.content if b.type == "text")
    if message.role == "system":
        return [(where, Message(role="system", content=text))]
    if message.role == "assistant":
        calls = [tool_call(b, f"{where}.content[{j}]") for j, b in enumerate(message.content) if b.type == "tool_use"]
        return [(where, Message(role="assistant", content=text, tool_calls=calls or None))]
    turns = [(f"{where}.content[{j}]", tool_turn(b, f"{where}.content[{j}]"))
             for j, b in enumerate(message.content) if b.type == "tool_result"]
    for j, block in enumerate(message.content):
        if block.type == "image":
            if "image" in attachments:
                raise bad_request(f"{where}.content[{j}]", "one image per request: the router takes a single image")
            attachments["image"] = decode_base64(block.source.data or "", f"{where}.content[{j}].source.data")
            fields["image"] = f"{where}.content[{j}]"
    if text or not turns or any(b.type == "image" for b in message.content):
        turns.append((where, Message(role="user", content=text)))
    return turns


def tool_call(block: Block, where: str) -> ToolCall:
    """An assistant's tool_use block as the contract's tool call (its input as JSON text)."""
    try:
        return ToolCall(id=block.id, function=FunctionCall(name=block.name,
                                                           arguments=json.dumps(block.input, ensure_ascii=False)))
    except ValidationError as exc:
        raise bad_request(*describe(exc, ToolCall, where)) from None


def tool_turn(block: Block, where: str) -> Message:
    """A tool_result block as the router's tool turn: its text (text blocks only), marked when an error."""
    for m, part in enumerate(block.content or []):
        if part.type != "text":
            raise bad_request(f"{where}.content[{m}].type", f"{part.type!r}: a tool result's content is text here")
    text = texts(block.content or [], f"{where}.content")
    return Message(role="tool", content=f"{IS_ERROR}{text}" if block.is_error else text, tool_call_id=block.tool_use_id)


def texts(blocks: list[Block], where: str) -> str:
    """Text blocks joined (system prompts and tool results take text blocks only)."""
    for j, block in enumerate(blocks):
        if block.type != "text":
            raise bad_request(f"{where}[{j}].type", f"{block.type!r}: only text blocks here")
    return "\n".join(b.text or "" for b in blocks)
