"""Each OpenAI route's work: the request translated into one router call, the answer back. No routing."""
from __future__ import annotations

import dataclasses

from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from model_router.contract.request import RouteOptions
from model_router.contract.router import RouterAnswer, RouterRequest

from . import relay, responses
from .connection import RouterConnection
from .errors import ApiError
from .protocol import (ChatCompletionRequest, FeedbackBody, FeedbackRecorded, SpeechBody, Transcription,
                       TranscriptionBody)
from .translate import FEEDBACK_FIELDS, RouterCall, chat_call, speech_call, transcription_call

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _router(request: Request) -> RouterConnection:
    return request.app.state.router


async def answer(request: Request, call: RouterCall) -> RouterAnswer:
    """The router's whole answer to `call`, cancelled if the client leaves."""
    return await relay.while_connected(request, relay.last(_router(request).events(call)))


async def chat(request: Request, req: ChatCompletionRequest) -> Response:
    call = chat_call(req)
    if "no-cache" in request.headers.get("cache-control", "").lower():  # a fresh answer, not the cache's
        call = dataclasses.replace(call, request=dataclasses.replace(
            call.request, options=call.request.options.model_copy(update={"cache": "off"})))
    events = _router(request).events(call)
    if req.stream:
        # The router refuses a request before its first piece: wait for that piece, so that a refusal
        # is an HTTP status rather than an error inside a stream already answered 200.
        first = await relay.while_connected(request, anext(events))
        return StreamingResponse(relay.chat_stream(req, first, events), media_type="text/event-stream",
                                 headers=SSE_HEADERS)
    final = await relay.while_connected(request, relay.last(events))
    body = responses.chat_completion(responses.completion_id(), final.model or req.model, final)
    return JSONResponse(responses.dump(body), headers=responses.routing_header(final.decision))


async def speech(request: Request, req: SpeechBody) -> Response:
    final = await answer(request, speech_call(req))
    if final.audio is None:
        raise ApiError(500, f"{final.model}: answered without audio", "server_error")
    return Response(final.audio, media_type="audio/wav", headers=responses.routing_header(final.decision))


async def transcription(request: Request, req: TranscriptionBody, audio: bytes) -> Response:
    final = await answer(request, transcription_call(req, audio))
    headers = responses.routing_header(final.decision)
    if req.response_format == "text":
        return PlainTextResponse(final.text, headers=headers)
    return JSONResponse(Transcription(text=final.text, routing=final.decision).model_dump(), headers=headers)


async def feedback(request: Request, body: FeedbackBody) -> FeedbackRecorded:
    """The router logs the outcome (options.feedback, answered ahead of its queue); its refusal of an
    unknown id names `decision_id`."""
    # Options alone: the router reads nothing else of a feedback request (no query to check).
    call = RouterCall(RouterRequest(options=RouteOptions(feedback=body)), FEEDBACK_FIELDS)
    return FeedbackRecorded.model_validate((await answer(request, call)).decision)


async def deep_health(request: Request) -> dict:
    """The router's deep health report (as `tmr health --deep` shows it)."""
    final = await answer(request, RouterCall(RouterRequest.of("", {"health": True})))
    return final.decision
