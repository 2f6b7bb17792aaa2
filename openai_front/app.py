"""The app: settings, the router connection for its lifetime, OpenAI-shaped errors, the routes.

No routing happens here: every request goes to the router, which picks the model.
"""
from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from model_router.registry import REGISTRY_FILE, load_registry

from . import anthropic_messages, playground, tracing
from .connection import RouterConnection
from .errors import ApiError
from .responses_api.store import open_store
from .tenants.admin import admin, me
from .tenants.enforce import MeteredRouter
from .tenants.metrics import FrontMetrics
from .tenants.service import open_tenants
from .routes import public, v1


ANTHROPIC_ROUTE = "/v1/messages"


@dataclass(frozen=True)
class Settings:
    triton_grpc: str = "127.0.0.1:8001"
    api_key: str | None = None  # when set, every /v1 route needs `Authorization: Bearer <key>`
    profile: str = "cpu"  # the router's profile (TMR_PROFILE): which registry models it may pick
    registry: Path = REGISTRY_FILE
    # Where stored responses (the Responses API's `store`) are kept: memory[:N] or a redis:// URL.
    responses_store: str = "memory"
    # Tenants: where their keys, limits and usage live (a SQLite file, or a redis:// URL every replica shares);
    # None: no tenant keys (the single api_key, or an open server). The admin API takes `admin_key`.
    keys: str | None = None
    admin_key: str | None = None


def create_app(settings: Settings) -> FastAPI:
    registry = load_registry(settings.registry)
    registry.profile(settings.profile)  # an unknown profile fails here, at startup
    open_store(settings.responses_store)  # so does an unknown store

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.router = RouterConnection(settings.triton_grpc)  # inside the loop, as grpc.aio needs
        app.state.responses = open_store(settings.responses_store)
        app.state.tenants = open_tenants(settings.keys, settings.admin_key) if settings.keys else None
        fresh = None
        if app.state.tenants is not None:
            app.state.router = MeteredRouter(app.state.router, app.state.tenants, app.state.front_metrics)
            fresh = asyncio.create_task(app.state.tenants.keep_fresh())
        yield
        if fresh is not None:
            fresh.cancel()
        await app.state.responses.close()
        await app.state.router.close()
        if app.state.tenants is not None:
            app.state.tenants.close()

    app = FastAPI(title="Triton Model Router: OpenAI-compatible API", lifespan=lifespan,
                  telemetry=tracing.telemetry())
    app.state.settings, app.state.registry, app.state.started = settings, registry, int(time.time())
    app.state.tenants = None  # opened with the router connection (lifespan)
    app.state.front_metrics = FrontMetrics(m.name for m in registry.managed(settings.profile))
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    app.include_router(public)
    app.include_router(v1)
    app.include_router(admin)
    app.include_router(me)
    playground.mount(app)
    return app


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    """In the shape of the caller's API: Anthropic's on its Messages route, OpenAI's elsewhere."""
    anthropic = request.url.path.rstrip("/").startswith(ANTHROPIC_ROUTE)
    body = anthropic_messages.error_body(exc) if anthropic else exc.body()
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's own (an unknown route, a wrong method, a malformed form) in OpenAI's shape."""
    return await _api_error(_request, ApiError(exc.status_code, str(exc.detail),
                                               "invalid_request_error" if exc.status_code < 500 else "server_error"))


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    """A bug of ours: OpenAI's shape still (the server logs the traceback)."""
    return await _api_error(_request, ApiError(500, f"internal error: {type(exc).__name__}", "server_error"))
