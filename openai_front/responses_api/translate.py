"""A Responses request -> the router's call (the same call Chat Completions makes). Pure; no I/O.

`input` items become the router's turns (a message's text parts joined, its image the request's
image; a function call an assistant turn's call; its output a tool turn), after the stored turns of
`previous_response_id` and below `instructions` (a system turn, never carried over to the next
response, as OpenAI has it). Every router field is mapped back to the field the client sent, so
that the router's errors name `input[2].content` or `max_output_tokens`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from model_router.contract.generation import SAMPLING
from model_router.errors import describe

from ..errors import bad_request
from ..protocol import AUTO
from ..translate import RouterCall, decode_data_url, router_call
from .protocol import ITEM_TYPES, ContentPart, FunctionCallItem, FunctionCallOutputItem, Item, MessageItem, \
    ResponsesRequest, _item_type

Turn = dict[str, Any]  # one of the router's turns, as JSON (contract.request.Message)
SAMPLING_OPTION = f"options.{SAMPLING}"
# Router field -> the Responses field it came from (the longest prefix wins; indices are added per call).
FIELDS = {"text": "input", "messages": "input", "image": "input", "options.model": "model",
          "options.prefer": "prefer", "options.use_case": "use_case", "options.tools": "tools",
          "options.tool_choice": "tool_choice", "options.tool_choice.function": "tool_choice",
          "options.parallel_tool_calls": "parallel_tool_calls", "options.response_format": "text.format",
          "options.response_format.json_schema": "text.format",
          f"{SAMPLING_OPTION}.max_tokens": "max_output_tokens", f"{SAMPLING_OPTION}.temperature": "temperature",
          f"{SAMPLING_OPTION}.top_p": "top_p"}


@dataclass(frozen=True)
class Translated:
    call: RouterCall
    turns: list[Turn]  # the conversation so far (earlier responses' and this input), to be stored with the answer


def responses_call(req: ResponsesRequest, earlier: list[Turn]) -> Translated:
    """The router's call for `req`, continuing the `earlier` turns (those of previous_response_id)."""
    unknown = req.unsupported()
    if unknown:
        raise bad_request(unknown, "not supported by this server")
    fields = dict(FIELDS)
    system = [{"role": "system", "content": req.instructions}] if req.instructions else []
    fields.update({f"messages[{k}]": "instructions" for k in range(len(system))})
    fields.update({f"messages[{len(system) + k}]": "previous_response_id" for k in range(len(earlier))})
    attachments: dict[str, bytes] = {}
    new = _turns(_items(req.input), attachments, fields, offset=len(system) + len(earlier))
    turns = system + earlier + new
    options = _options(req, fields)
    if len(turns) == 1 and turns[0]["role"] == "user":  # the query alone: the router's plain text input
        return Translated(router_call(fields, turns[0]["content"], options, attachments), earlier + new)
    return Translated(router_call(fields, "", options, attachments, turns), earlier + new)


def _items(raw: str | list[dict[str, Any]]) -> list[Item]:
    if isinstance(raw, str):
        return [MessageItem.model_validate({"role": "user", "content": raw})]
    items = []
    for i, value in enumerate(raw):
        kind = _item_type(value)
        if kind not in ITEM_TYPES:
            raise bad_request(f"input[{i}].type", f"{kind!r} not supported. Available: {sorted(ITEM_TYPES)}")
        try:
            items.append(ITEM_TYPES[kind].model_validate(value))
        except ValidationError as exc:
            raise bad_request(*describe(exc, ITEM_TYPES[kind], f"input[{i}]")) from None
    return items


def _turns(items: list[Item], attachments: dict[str, bytes], fields: dict[str, str], offset: int) -> list[Turn]:
    """The items as the router's turns; a function call joins the assistant turn just before it."""
    turns: list[Turn] = []
    for i, item in enumerate(items):
        had_image = "image" in attachments
        if isinstance(item, FunctionCallItem):
            call = {"id": item.call_id, "type": "function",
                    "function": {"name": item.name, "arguments": item.arguments}}
            if turns and turns[-1]["role"] == "assistant":
                turns[-1].setdefault("tool_calls", []).append(call)
                continue
            turns.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif isinstance(item, FunctionCallOutputItem):
            turns.append({"role": "tool", "tool_call_id": item.call_id,
                          "content": _text(item.output, f"input[{i}].output", "tool", attachments)})
            at = f"messages[{offset + len(turns) - 1}]"
            fields.update({f"{at}.tool_call_id": f"input[{i}].call_id", f"{at}.content": f"input[{i}].output"})
        else:
            role = "system" if item.role == "developer" else item.role
            turns.append({"role": role, "content": _text(item.content, f"input[{i}].content", role, attachments)})
        fields[f"messages[{offset + len(turns) - 1}]"] = f"input[{i}]"
        if "image" in attachments and not had_image:
            fields["image"] = f"input[{i}].content"
    return turns


def _text(content: list[ContentPart], where: str, role: str, attachments: dict[str, bytes]) -> str:
    """A message's text parts joined; its image (a data URL) the request's one image."""
    texts = []
    for j, part in enumerate(content):
        if part.type != "input_image":
            texts.append(part.text if part.text is not None else part.refusal or "")
            continue
        if role != "user":
            raise bad_request(f"{where}[{j}]", "only user messages may carry an image")
        if "image" in attachments:
            raise bad_request(f"{where}[{j}]", "one image per request: the router takes a single image")
        attachments["image"] = decode_data_url(part.image_url or "", f"{where}[{j}].image_url")
    return "\n".join(texts)


def _options(req: ResponsesRequest, fields: dict[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {"stream": req.stream}
    if req.model != AUTO:
        options["model"] = req.model
    sampling = {k: v for k, v in (("max_tokens", req.max_output_tokens), ("temperature", req.temperature),
                                  ("top_p", req.top_p)) if v is not None}
    if sampling:
        options[SAMPLING] = sampling
    if req.tools:
        options["tools"] = [{"type": "function", "function": t.model_dump(exclude_none=True, exclude={"type"})}
                            for t in req.tools]
        fields.update({f"options.tools[{i}].function": f"tools[{i}]" for i in range(len(req.tools))})
    if req.tool_choice is not None:
        choice = req.tool_choice
        options["tool_choice"] = choice if isinstance(choice, str) else {"type": "function",
                                                                          "function": {"name": choice.name}}
    fmt = req.text.format if req.text else None
    if fmt is not None and fmt.type != "text":
        schema = {"name": fmt.name or "response", "schema": fmt.schema_ or {}, "strict": fmt.strict,
                  "description": fmt.description}
        options["response_format"] = {"type": fmt.type} if fmt.type == "json_object" else {
            "type": "json_schema", "json_schema": {k: v for k, v in schema.items() if v is not None}}
    passed = {"parallel_tool_calls": req.parallel_tool_calls, "prefer": req.prefer, "use_case": req.use_case}
    options.update({k: v for k, v in passed.items() if v is not None})
    return options
