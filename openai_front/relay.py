"""The router's answers as HTTP answers: whole, or streamed as OpenAI's server-sent events; either way
the router's request is cancelled when the client goes away."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator, Awaitable, TypeVar

from fastapi import Request

from model_router.contract.router import RouterAnswer

from . import responses
from .errors import ApiError
from .protocol import ChatCompletionRequest, Delta

T = TypeVar("T")


async def chat_stream(req: ChatCompletionRequest, first: RouterAnswer,
                      events: AsyncIterator[RouterAnswer]) -> AsyncIterator[str]:
    """OpenAI's chunks as the router's pieces come, then the tool calls the model made (the router sends
    them whole, at the end); the last names the model that answered and carries the routing decision
    (it exists only once the router is done), then usage if asked, then [DONE]."""
    cid = responses.completion_id()
    try:
        yield responses.chunk(cid, req.model, Delta(role="assistant", content=""))
        event = first
        while not event.final:
            yield responses.chunk(cid, req.model, Delta(content=event.text))
            event = await anext(events)
        if event.text or event.audio is not None:
            yield responses.chunk(cid, req.model, responses.last_delta(cid, event))
        for delta in responses.tool_call_deltas(responses.tool_calls(event) or []):
            yield responses.chunk(cid, req.model, delta)
        model = event.model or req.model
        yield responses.chunk(cid, model, finish=responses.finish_reason(event), routing=event.decision)
        usage = responses.usage(event)
        if req.include_usage and usage is not None:
            yield responses.chunk(cid, model, usage=usage)
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


async def last(events: AsyncIterator[RouterAnswer]) -> RouterAnswer:
    async for event in events:
        if event.final:
            return event
    raise ApiError(500, "router: no final response", "server_error")
