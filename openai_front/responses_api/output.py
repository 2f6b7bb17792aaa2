"""The router's answer as a Response object, whole or as the Responses API's stream of events. Pure
apart from ids and clocks.

A streamed response: `response.created`, `response.in_progress`, then per output item its
`output_item.added`, its text (`content_part.added`, `output_text.delta`..., `output_text.done`,
`content_part.done`) or a function call's arguments (`function_call_arguments.delta`..., `.done`),
its `output_item.done`, and last `response.completed` (`response.incomplete` when cut by
max_output_tokens). Every event carries its `sequence_number`.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from model_router.contract.router import RouterAnswer

from ..responses import ARGUMENTS_PIECE, ROUTING_FIELD
from .protocol import ResponsesRequest

Event = dict[str, Any]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def usage(answer: RouterAnswer) -> dict[str, Any] | None:
    """The engine's own counts, in the Responses API's names."""
    if answer.usage is None:
        return None
    got = answer.usage
    return {"input_tokens": got.prompt_tokens, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": got.completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": got.total_tokens}


def message_item(mid: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [] if status == "in_progress" else [text_part(text)]
    return {"id": mid, "type": "message", "status": status, "role": "assistant", "content": content}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(fid: str, call: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    arguments = call["function"]["arguments"] if status == "completed" else ""
    return {"id": fid, "type": "function_call", "status": status, "call_id": call["id"],
            "name": call["function"]["name"], "arguments": arguments}


def status_of(answer: RouterAnswer) -> str:
    return "incomplete" if answer.finish_reason == "length" else "completed"


@dataclass
class Skeleton:
    """What a response says of its request: the same in every event of a stream and in the store."""

    rid: str
    req: ResponsesRequest
    created_at: int = field(default_factory=lambda: int(time.time()))

    def response(self, status: str = "in_progress", output: list[dict[str, Any]] | None = None,
                 answer: RouterAnswer | None = None) -> dict[str, Any]:
        req = self.req
        fmt = req.text.format.model_dump(by_alias=True, exclude_none=True) if req.text and req.text.format else None
        choice = req.tool_choice if isinstance(req.tool_choice, str) or req.tool_choice is None \
            else req.tool_choice.model_dump()
        decision = answer.decision if answer is not None else {}
        return {
            "id": self.rid, "object": "response", "created_at": self.created_at, "status": status,
            "error": None, "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": req.instructions, "max_output_tokens": req.max_output_tokens,
            "model": (answer.model if answer is not None else None) or req.model, "output": output or [],
            "parallel_tool_calls": req.parallel_tool_calls is not False,
            "previous_response_id": req.previous_response_id, "store": req.keep,
            "temperature": req.temperature, "top_p": req.top_p, "text": {"format": fmt or {"type": "text"}},
            "tool_choice": choice or "auto", "tools": [t.model_dump(exclude_none=True) for t in req.tools or []],
            "truncation": "disabled", "usage": usage(answer) if answer is not None else None,
            "metadata": {**(req.metadata or {}), **routing_metadata(decision)},
            ROUTING_FIELD: decision,  # ours: the router's whole decision, as on Chat Completions
        }


def routing_metadata(decision: dict[str, Any]) -> dict[str, str]:
    """The decision's gist as metadata (strings, as OpenAI's metadata holds): which model, why, its id."""
    picked = {"tmr_model": decision.get("model"), "tmr_use_case": decision.get("use_case"),
              "tmr_decision_id": decision.get("id")}
    return {k: str(v) for k, v in picked.items() if v}


def output_items(answer: RouterAnswer, mid: str, fids: list[str]) -> list[dict[str, Any]]:
    """A message with the answer's text (none when the model only called tools), then each call."""
    calls = answer.tool_calls or []
    items = [message_item(mid, answer.text)] if answer.text or not calls else []
    return items + [call_item(fid, call) for fid, call in zip(fids, calls)]


def whole(skeleton: Skeleton, answer: RouterAnswer) -> dict[str, Any]:
    fids = [new_id("fc") for _ in answer.tool_calls or []]
    return skeleton.response(status_of(answer), output_items(answer, new_id("msg"), fids), answer)


class EventWriter:
    """Server-sent events, numbered in the order they are written."""

    def __init__(self) -> None:
        self.sequence = 0

    def __call__(self, kind: str, **body: Any) -> str:
        data = {"type": kind, **body, "sequence_number": self.sequence}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def text_events(write: EventWriter, mid: str, index: int, deltas: list[str], opened: bool) -> list[str]:
    """A message's events: opened (when not yet), its deltas; `deltas` None-free."""
    out = []
    if not opened:
        out.append(write("response.output_item.added", output_index=index, item=message_item(mid, "", "in_progress")))
        out.append(write("response.content_part.added", item_id=mid, output_index=index, content_index=0,
                         part=text_part("")))
    out += [write("response.output_text.delta", item_id=mid, output_index=index, content_index=0, delta=d,
                  logprobs=[]) for d in deltas if d]
    return out


def text_done(write: EventWriter, mid: str, index: int, text: str) -> list[str]:
    return [write("response.output_text.done", item_id=mid, output_index=index, content_index=0, text=text,
                  logprobs=[]),
            write("response.content_part.done", item_id=mid, output_index=index, content_index=0,
                  part=text_part(text)),
            write("response.output_item.done", output_index=index, item=message_item(mid, text))]


def call_events(write: EventWriter, fid: str, index: int, call: dict[str, Any]) -> list[str]:
    """A function call: added with no arguments, its arguments in pieces, done."""
    args = call["function"]["arguments"]
    pieces = [args[i:i + ARGUMENTS_PIECE] for i in range(0, len(args), ARGUMENTS_PIECE)]
    return [write("response.output_item.added", output_index=index, item=call_item(fid, call, "in_progress")),
            *[write("response.function_call_arguments.delta", item_id=fid, output_index=index, delta=p)
              for p in pieces],
            write("response.function_call_arguments.done", item_id=fid, output_index=index, arguments=args,
                  name=call["function"]["name"]),
            write("response.output_item.done", output_index=index, item=call_item(fid, call))]
