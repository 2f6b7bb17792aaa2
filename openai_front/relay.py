"""The router's events as HTTP answers: whole, or streamed as OpenAI's server-sent events; either way
the router's request is cancelled when the client goes away."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator, Awaitable, TypeVar

from fastapi import Request

from . import responses
from .connection import Final, Piece
from .errors import ApiError
from .schemas import ChatCompletionRequest
from .tokens import TokenCounter
from .translate import RouterCall

T = TypeVar("T")


async def chat_stream(tokens: TokenCounter, req: ChatCompletionRequest, call: RouterCall, first: Piece | Final,
                      events: AsyncIterator[Piece | Final]) -> AsyncIterator[str]:
    """OpenAI's chunks as the router's pieces come; the last names the model that answered and carries
    the routing decision (it exists only once the router is done), then usage if asked, then [DONE]."""
    cid, pieces = responses.completion_id(), []
    try:
        yield responses.chunk(cid, req.model, {"role": "assistant", "content": ""})
        event = first
        while isinstance(event, Piece):
            pieces.append(event.text)
            yield responses.chunk(cid, req.model, {"content": event.text})
            event = await anext(events)
        if event.text:
            pieces.append(event.text)
            yield responses.chunk(cid, req.model, {"content": event.text})
        usage = await tokens.usage(event.model, turns(call), "".join(pieces))
        model = event.model or req.model
        yield responses.chunk(cid, model, {}, responses.finish_reason(usage.completion_tokens, max_tokens(call),
                                                                      usage.exact), routing=event.decision)
        if req.include_usage:
            yield responses.chunk(cid, model, usage=usage.as_dict())
        yield responses.DONE
    except ApiError as exc:  # after the first piece: the status is sent; OpenAI's clients raise this event
        yield responses.event(exc.body())
    finally:
        await events.aclose()


async def while_connected(request: Request, work: Awaitable[T]) -> T:
    """`work`, cancelled (and with it the router's request) if the client goes away first: uvicorn
    runs a handler to its end whoever is left to read the answer. A stream watches for itself."""
    task, gone = asyncio.ensure_future(work), asyncio.ensure_future(_disconnected(request))
    done: set = set()
    try:
        done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if task not in done:
            task.cancel()
    if task not in done:
        raise ApiError(499, "the client closed the request")  # no one reads it; the log shows it
    return task.result()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def answer(request: Request, call: RouterCall) -> Final:
    """The router's whole answer to `call`."""
    return await while_connected(request, last(request.app.state.router.events(call)))


async def last(events: AsyncIterator[Piece | Final]) -> Final:
    async for event in events:
        if isinstance(event, Final):
            return event
    raise ApiError(500, "router: no final response", "server_error")


def turns(call: RouterCall) -> list[dict[str, str]]:
    """The conversation the model saw, as far as the client sent it."""
    return call.messages or [{"role": "user", "content": call.text}]


def max_tokens(call: RouterCall) -> int | None:
    return call.options.get("sampling_parameters", {}).get("max_tokens")
