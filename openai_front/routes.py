"""The HTTP routes: short module-level handlers; each parses its body and hands it to `serving`."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from . import anthropic_messages, embeddings, responses_api, serving
from .bodies import parse_body
from .catalog import model_list
from .errors import ApiError, bad_request, invalid_body, unauthorized
from .protocol import (ChatCompletionRequest, FeedbackBody, FeedbackRecorded, Health, ModelCard, ModelList, SpeechBody,
                       TranscriptionBody)
from .tenants.enforce import authenticate, presented


async def check_key(request: Request, authorization: str | None = Header(None),
                    x_api_key: str | None = Header(None)) -> None:
    """The caller's key, as OpenAI's clients send it (`Authorization: Bearer`) or Anthropic's (`x-api-key`):
    the server's own, or a tenant's (tenants.enforce: its limits before the router is asked)."""
    await authenticate(request, presented(authorization, x_api_key))


public = APIRouter()
v1 = APIRouter(prefix="/v1", dependencies=[Depends(check_key)])


@public.get("/health")
async def health(request: Request) -> Health:
    return Health(router_ready=await request.app.state.router.ready())


@public.get("/metrics")
async def metrics(request: Request) -> Response:
    """The front's own metrics (Prometheus): each tenant key's requests, tokens and refusals. They name
    the tenants: with an admin key set, only its holder (Prometheus' bearer token) reads them."""
    expected = request.app.state.settings.admin_key
    if expected is not None and presented(request.headers.get("authorization"), None) != expected:
        raise unauthorized("the front's metrics need the admin key: 'Authorization: Bearer <admin key>'")
    tenants = request.app.state.tenants
    body = request.app.state.front_metrics.exposition(tenants is not None and tenants.degraded)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@v1.get("/models")
async def models(request: Request) -> ModelList:
    state = request.app.state
    return model_list(state.registry, state.settings.profile, state.started)


@v1.get("/models/{model}")
async def model(request: Request, model: str) -> ModelCard:
    known = {m.id: m for m in (await models(request)).data}
    if model not in known:
        raise ApiError(404, f"model: {model!r} unknown. Available: {list(known)}", param="model",
                       code="model_not_found")
    return known[model]


@v1.post("/chat/completions")
async def chat_completions(request: Request) -> Response:
    return await serving.chat(request, await parse_body(request, ChatCompletionRequest))


@v1.post("/responses")
async def create_response(request: Request) -> Response:
    """OpenAI's Responses API."""
    return await responses_api.create(request, await parse_body(request, responses_api.ResponsesRequest))


@v1.get("/responses/{response_id}")
async def get_response(request: Request, response_id: str) -> Response:
    return await responses_api.retrieve(request, response_id)


@v1.delete("/responses/{response_id}")
async def delete_response(request: Request, response_id: str) -> Response:
    return await responses_api.delete(request, response_id)


@v1.post("/messages")
async def messages(request: Request) -> Response:
    """Anthropic's Messages API."""
    return await anthropic_messages.serve(request, await parse_body(request, anthropic_messages.MessagesRequest))


@v1.post("/embeddings")
async def create_embeddings(request: Request) -> Response:
    return await embeddings.serve(request, await parse_body(request, embeddings.EmbeddingsRequest))


@v1.post("/audio/speech")
async def speech(request: Request) -> Response:
    return await serving.speech(request, await parse_body(request, SpeechBody))


@v1.post("/audio/transcriptions")
async def transcriptions(request: Request) -> Response:
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise bad_request("file", "required: the audio file, as multipart/form-data")
    fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
    try:
        req = TranscriptionBody.model_validate(fields)
    except ValidationError as exc:
        raise invalid_body(exc, TranscriptionBody) from None
    return await serving.transcription(request, req, await upload.read())


@v1.post("/feedback")
async def feedback(request: Request) -> FeedbackRecorded:
    """Ours: a client's score (0..1) of an answer, by its decision's id (`routing.id`), for the decision log."""
    return await serving.feedback(request, await parse_body(request, FeedbackBody))


@v1.post("/tmr/models/{model}/{action}")
async def model_control(request: Request, model: str, action: str,
                        x_tmr_admin_key: str | None = Header(None)) -> dict:
    """Ours: load or unload a model (Triton's model control; its restricted API takes the admin key)."""
    if action not in ("load", "unload"):
        raise ApiError(404, f"action: {action!r} unknown. Available: ['load', 'unload']", param="action")
    if model not in {m.name for m in request.app.state.registry.managed(request.app.state.settings.profile)}:
        raise ApiError(404, f"model: {model!r} unknown", param="model", code="model_not_found")
    await request.app.state.router.control(action, model, x_tmr_admin_key)
    return {"model": model, "action": action, "done": True}


@v1.get("/tmr/health")
async def deep_health(request: Request) -> dict:
    """Ours: the router's deep health report (each model's state, memory, loads, recoveries)."""
    return await serving.deep_health(request)
