"""The router's answer streamed as Anthropic's server-sent events.

message_start (the message without content; usage is the engine's, known at the end), ping, the
text block's start, its text_delta pieces as the router's pieces come, its stop; then each tool_use
block (the router sends tool calls whole, at the end): start, its input in input_json_delta pieces,
stop; then message_delta (stop_reason, usage, and ours: the routing decision) and message_stop.
An error after the first piece is an `error` event in Anthropic's shape.
"""
from __future__ import annotations

import json
from typing import Any, AsyncIterator

from model_router.contract.router import RouterAnswer

from ..errors import ApiError
from ..responses import ARGUMENTS_PIECE, ROUTING_FIELD
from . import answer
from .errors import error_body


def sse(kind: str, body: dict[str, Any]) -> str:
    """One event: its type named on the `event:` line and in the data, as Anthropic sends it."""
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **body}, ensure_ascii=False)}\n\n"


def text_start(index: int) -> str:
    return sse("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})


def text_delta(index: int, text: str) -> str:
    return sse("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": text}})


def block_stop(index: int) -> str:
    return sse("content_block_stop", {"index": index})


def tool_use_events(index: int, use: dict[str, Any]) -> list[str]:
    """A tool_use block: its start (id, name, empty input), its input as JSON in pieces, its stop."""
    args = json.dumps(use["input"], ensure_ascii=False)
    start = sse("content_block_start", {"index": index, "content_block": {**use, "input": {}}})
    pieces = [sse("content_block_delta", {"index": index, "delta": {"type": "input_json_delta", "partial_json": piece}})
              for piece in (args[i:i + ARGUMENTS_PIECE] for i in range(0, len(args), ARGUMENTS_PIECE))]
    return [start, *pieces, block_stop(index)]


def ending(final: RouterAnswer) -> list[str]:
    """message_delta (the stop reason; the engine's counts, input tokens too: they are known only now)
    and message_stop."""
    delta = {"delta": {"stop_reason": answer.stop_reason(final), "stop_sequence": None},
             "usage": answer.usage(final), ROUTING_FIELD: final.decision}
    return [sse("message_delta", delta), sse("message_stop", {})]


async def message_events(model: str, first: RouterAnswer, events: AsyncIterator[RouterAnswer]) -> AsyncIterator[str]:
    """The events of one answer, from its first piece (`first`) to its final response; the router's
    request is cancelled if the client leaves (the iterator closed)."""
    try:
        yield sse("message_start", {"message": answer.start(answer.message_id(), model)})
        yield sse("ping", {})
        opened, event = False, first
        while not event.final:
            if event.text:
                if not opened:
                    opened = True
                    yield text_start(0)
                yield text_delta(0, event.text)
            event = await anext(events)
        uses = answer.tool_uses(event)
        if not opened and (event.text or not uses):
            opened = True
            yield text_start(0)
        if event.text:
            yield text_delta(0, event.text)
        if opened:
            yield block_stop(0)
        for index, use in enumerate(uses, start=int(opened)):
            for line in tool_use_events(index, use):
                yield line
        for line in ending(event):
            yield line
    except ApiError as exc:  # after the first piece: the status is sent; Anthropic's clients raise this event
        yield sse("error", {"error": error_body(exc)["error"]})
    finally:
        await events.aclose()
