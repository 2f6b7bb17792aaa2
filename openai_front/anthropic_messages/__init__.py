"""POST /v1/messages: Anthropic's Messages API, translated into the router's call and back.

The same router call as chat completions (translate.router_call, the contract's RouterRequest);
the router's answer as Anthropic's message, or its events when streamed. The `anthropic-version`
header is accepted whatever its value and changes nothing: bodies, events and errors are in the
shape of the version Anthropic's SDKs send (2023-06-01).
"""
from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from .. import relay, responses
from ..serving import SSE_HEADERS
from . import answer
from .errors import error_body
from .protocol import MessagesRequest
from .stream import message_events
from .translate import messages_call

__all__ = ["MessagesRequest", "error_body", "serve"]


async def serve(request: Request, body: MessagesRequest) -> Response:
    """One Messages request: whole, or as Anthropic's events (a refusal before the first piece is an
    HTTP status: the first piece is awaited before the stream is answered 200)."""
    events = request.app.state.router.events(messages_call(body))
    if body.stream:
        first = await relay.while_connected(request, anext(events))
        return StreamingResponse(message_events(body.model, first, events), media_type="text/event-stream",
                                 headers=SSE_HEADERS)
    final = await relay.while_connected(request, relay.last(events))
    return JSONResponse(answer.message(answer.message_id(), final.model or body.model, final),
                        headers=responses.routing_header(final.decision))
