"""OpenAI's Responses API: POST /v1/responses, GET and DELETE /v1/responses/{id}.

One translation layer over the router's call (translate.py), the answer as a Response object or
its stream of events (output.py), and the responses kept for `previous_response_id` (store.py).
"""
from __future__ import annotations

from typing import Any, AsyncIterator

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from model_router.contract.router import RouterAnswer

from .. import relay
from ..errors import ApiError
from ..responses import routing_header
from ..serving import SSE_HEADERS
from . import output
from .protocol import ResponsesRequest
from ..tenants.enforce import presented
from .store import ResponseStore, owner_of
from .translate import Translated, Turn, responses_call

__all__ = ["ResponsesRequest", "create", "retrieve", "delete"]


def _store(request: Request) -> ResponseStore:
    return request.app.state.responses


def _owner(request: Request) -> str:
    """The caller, by the key it was authenticated with (each sees only the responses it made)."""
    return owner_of(presented(request.headers.get("authorization"), request.headers.get("x-api-key")))


async def create(request: Request, req: ResponsesRequest) -> Response:
    earlier: list[Turn] = []
    if req.previous_response_id:
        record = await _store(request).get(_owner(request), req.previous_response_id)
        if record is None:
            raise ApiError(404, f"previous_response_id: {req.previous_response_id[:80]!r} not found (never stored, "
                                f"deleted, or made with another key)", param="previous_response_id",
                           code="previous_response_not_found")
        earlier = record["turns"]
    translated = responses_call(req, earlier)
    skeleton = output.Skeleton(output.new_id("resp"), req)
    events = request.app.state.router.events(translated.call)
    if req.stream:
        # A refusal before the first piece is an HTTP status, not an error inside a stream answered 200.
        first = await relay.while_connected(request, anext(events))
        return StreamingResponse(_stream(request, skeleton, translated, first, events),
                                 media_type="text/event-stream", headers=SSE_HEADERS)
    answer = await relay.while_connected(request, relay.last(events))
    body = output.whole(skeleton, answer)
    await _keep(request, req, body, translated, answer)
    return JSONResponse(body, headers=routing_header(answer.decision))


async def _keep(request: Request, req: ResponsesRequest, body: dict[str, Any], translated: Translated,
                answer: RouterAnswer) -> None:
    """The response and its conversation, for GET and for the next previous_response_id."""
    if not req.keep:
        return
    said: Turn = {"role": "assistant", "content": answer.text}
    if answer.tool_calls:
        said["tool_calls"] = answer.tool_calls
    await _store(request).put(_owner(request), body["id"], {"response": body, "turns": translated.turns + [said]})


async def _stream(request: Request, skeleton: output.Skeleton, translated: Translated, first: RouterAnswer,
                  events: AsyncIterator[RouterAnswer]) -> AsyncIterator[str]:
    write, mid = output.EventWriter(), output.new_id("msg")
    try:
        yield write("response.created", response=skeleton.response())
        yield write("response.in_progress", response=skeleton.response())
        event, text, opened = first, "", False
        while not event.final:
            if event.text:
                for line in output.text_events(write, mid, 0, [event.text], opened):
                    yield line
                text, opened = text + event.text, True
            event = await anext(events)
        calls = event.tool_calls or []
        if event.text or opened or not calls:
            for line in output.text_events(write, mid, 0, [event.text], opened) + \
                    output.text_done(write, mid, 0, text + event.text):
                yield line
        answer = RouterAnswer(text + event.text, True, event.decision, finish_reason=event.finish_reason,
                              usage=event.usage, tool_calls=event.tool_calls)
        fids = [output.new_id("fc") for _ in calls]
        base = 1 if event.text or opened or not calls else 0
        for i, (fid, call) in enumerate(zip(fids, calls)):
            for line in output.call_events(write, fid, base + i, call):
                yield line
        body = skeleton.response(output.status_of(answer), output.output_items(answer, mid, fids), answer)
        await _keep(request, skeleton.req, body, translated, answer)
        yield write(f"response.{body['status']}", response=body)
    except ApiError as exc:  # after the first piece: the status is sent; OpenAI's clients read this event
        yield write("error", code=exc.code or exc.type, message=exc.message, param=exc.param)
    finally:
        await events.aclose()


async def retrieve(request: Request, response_id: str) -> Response:
    record = await _store(request).get(_owner(request), response_id)
    if record is None:
        raise _not_found(response_id)
    return JSONResponse(record["response"])


async def delete(request: Request, response_id: str) -> Response:
    if not await _store(request).delete(_owner(request), response_id):
        raise _not_found(response_id)
    return JSONResponse({"id": response_id, "object": "response.deleted", "deleted": True})


def _not_found(response_id: str) -> ApiError:
    return ApiError(404, f"response_id: {response_id[:80]!r} not found (never stored, deleted, or made with another key)",
                    param="response_id", code="not_found")
