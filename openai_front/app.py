"""The HTTP routes: parse the OpenAI request, translate it, call the router, answer as OpenAI does.

No routing happens here: every request goes to the router, which picks the model.
"""
from __future__ import annotations

import hmac
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from launcher import DEFAULT_MODELS_DIR
from model_router.registry import REGISTRY_FILE, load_registry

from . import relay, responses
from .catalog import model_list
from .connection import RouterConnection
from .errors import ApiError, bad_request, invalid_body, unauthorized
from .schemas import ChatCompletionRequest, SpeechRequest, TranscriptionRequest
from .tokens import TokenCounter
from .translate import chat_call, speech_call, transcription_call

Body = TypeVar("Body", bound=BaseModel)


@dataclass(frozen=True)
class Settings:
    triton_grpc: str = "127.0.0.1:8001"
    api_key: str | None = None  # when set, every /v1 route needs `Authorization: Bearer <key>`
    profile: str = "cpu"  # the router's profile (TMR_PROFILE): which registry models it may pick
    registry: Path = REGISTRY_FILE
    models_dir: Path = DEFAULT_MODELS_DIR  # TMR_MODELS: where local models' tokenizers are


def create_app(settings: Settings) -> FastAPI:
    registry = load_registry(settings.registry)
    registry.profile(settings.profile)  # an unknown profile fails here, at startup
    started = int(time.time())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.router = RouterConnection(settings.triton_grpc)  # inside the loop, as grpc.aio needs
        app.state.tokens = TokenCounter(app.state.router.model_config, settings.models_dir)
        yield
        await app.state.router.close()

    app = FastAPI(title="Triton Model Router: OpenAI-compatible API", lifespan=lifespan)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(_key_check(settings.api_key))])

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        return {"status": "ok", "router_ready": await request.app.state.router.ready()}

    @v1.get("/models")
    async def models() -> dict[str, Any]:
        return model_list(registry, settings.profile, started)

    @v1.get("/models/{model}")
    async def model(model: str) -> dict[str, Any]:
        known = {m["id"]: m for m in model_list(registry, settings.profile, started)["data"]}
        if model not in known:
            raise ApiError(404, f"model: {model!r} unknown. Available: {list(known)}", param="model",
                           code="model_not_found")
        return known[model]

    @v1.post("/chat/completions")
    async def chat_completions(request: Request) -> Response:
        req = await _parse(request, ChatCompletionRequest)
        call = chat_call(req)
        events = request.app.state.router.events(call)
        if req.stream:
            # The router refuses a request before its first piece: wait for that piece, so that a refusal
            # is an HTTP status rather than an error inside a stream already answered 200.
            first = await relay.while_connected(request, anext(events))
            return StreamingResponse(relay.chat_stream(request.app.state.tokens, req, call, first, events),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        final = await relay.while_connected(request, relay.last(events))
        usage = await request.app.state.tokens.usage(final.model, relay.turns(call), final.text)
        finish = responses.finish_reason(usage.completion_tokens, relay.max_tokens(call), usage.exact)
        body = responses.chat_completion(responses.completion_id(), final.model or req.model, final.text, finish,
                                         usage.as_dict(), final.decision, final.audio)
        return JSONResponse(body, headers=responses.routing_header(final.decision))

    @v1.post("/audio/speech")
    async def speech(request: Request) -> Response:
        req = await _parse(request, SpeechRequest)
        final = await relay.answer(request, speech_call(req))
        if final.audio is None:
            raise ApiError(500, f"{final.model}: answered without audio", "server_error")
        return Response(final.audio, media_type="audio/wav", headers=responses.routing_header(final.decision))

    @v1.post("/audio/transcriptions")
    async def transcriptions(request: Request) -> Response:
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise bad_request("file", "required: the audio file, as multipart/form-data")
        fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
        try:
            req = TranscriptionRequest.model_validate(fields)
        except ValidationError as exc:
            raise invalid_body(exc, TranscriptionRequest) from None
        call = transcription_call(req, await upload.read())
        final = await relay.answer(request, call)
        headers = responses.routing_header(final.decision)
        if req.response_format == "text":
            return PlainTextResponse(final.text, headers=headers)
        return JSONResponse({"text": final.text, "routing": final.decision}, headers=headers)

    app.include_router(v1)
    return app


async def _parse(request: Request, model: type[Body]) -> Body:
    try:
        body = await request.json()
    except ValueError:
        raise bad_request("body", "not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("body", f"expected a JSON object, got {type(body).__name__}")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise invalid_body(exc, model) from None


def _key_check(expected: str | None):
    async def check(authorization: str | None = Header(None)) -> None:
        if expected is None:
            return
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise unauthorized("no API key: send the header 'Authorization: Bearer <key>'")
        if not hmac.compare_digest(key.strip().encode(), expected.encode()):
            raise unauthorized("incorrect API key")
    return check


async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's own (an unknown route, a wrong method, a malformed form) in OpenAI's shape."""
    return await _api_error(_request, ApiError(exc.status_code, str(exc.detail),
                                               "invalid_request_error" if exc.status_code < 500 else "server_error"))


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    """A bug of ours: OpenAI's shape still (the server logs the traceback)."""
    return await _api_error(_request, ApiError(500, f"internal error: {type(exc).__name__}", "server_error"))
