"""Who is asking, and whether they may, before the router is asked: the key (401 unknown, expired or
revoked), its rate and budget (429 with Retry-After); then, for the rest of the request, its bounds go
to the router (tenants.caller) and what its answer cost is charged after it (metered)."""
from __future__ import annotations

import asyncio
import hmac
import logging
import math
import time
from typing import Any, AsyncIterator

from fastapi import Request

from model_router import tracing
from model_router.contract.router import RouterAnswer, RouterRequest

from ..errors import ApiError, unauthorized
from .caller import CURRENT, Caller
from .keys import hash_key
from .limits import Refused
from .metrics import FrontMetrics
from .service import Tenants

log = logging.getLogger(__name__)
# The routes that ask the router for an answer: each request there is admitted against the key's limits.
ROUTED = frozenset({"/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/embeddings", "/v1/audio/speech",
                    "/v1/audio/transcriptions", "/v1/feedback"})
OUTAGE_RETRY_S = 5
CHARS_PER_TOKEN = 4


def presented(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key as OpenAI's clients send it (`Authorization: Bearer`) or Anthropic's (`x-api-key`)."""
    scheme, _, key = (authorization or "").partition(" ")
    if authorization and scheme.lower() == "bearer" and key.strip():
        return key.strip()
    return x_api_key.strip() if x_api_key and x_api_key.strip() else None


def _same(key: str, expected: str) -> bool:
    return hmac.compare_digest(key.encode(), expected.encode())


async def authenticate(request: Request, key: str | None) -> None:
    """The caller of a /v1 route: the server's own key (no limits), a tenant's key (its limits, its
    bounds), or nobody on a server that asks for no key."""
    settings, tenants = request.app.state.settings, request.app.state.tenants
    request.state.tenant = None
    if settings.api_key is None and tenants is None:
        return  # an open server
    if key is None:
        raise unauthorized("no API key: send the header 'Authorization: Bearer <key>' (or 'x-api-key: <key>')")
    if settings.api_key is not None and _same(key, settings.api_key):
        return
    if tenants is None:
        raise unauthorized("incorrect API key")
    caller = await _tenant(tenants, hash_key(key))
    request.state.tenant = caller.key
    CURRENT.set(caller)
    tracing.annotate(tenant=caller.key.name)
    if request.method == "POST" and request.url.path.rstrip("/") in ROUTED:
        admission = await tenants.admit(caller.key_hash, caller.key, time.time())
        if isinstance(admission, Refused):
            request.app.state.front_metrics.refused.labels(caller.key.name, admission.field).inc()
            raise limited(admission)


async def _tenant(tenants: Tenants, key_hash: str) -> Caller:
    record = await tenants.find(key_hash)
    if record is None:
        if tenants.degraded:  # Redis is away and this replica never saw the key: it may be valid, or not
            raise ApiError(503, "the key store is unavailable and this server has not seen this key yet",
                           "server_error", code="unavailable", headers={"Retry-After": str(OUTAGE_RETRY_S)})
        raise unauthorized("incorrect API key")
    why = record.refusal(time.time())
    if why is not None:
        raise unauthorized(why)
    return Caller(key_hash, record)


def limited(refused: Refused) -> ApiError:
    """429 as OpenAI answers it: a rate (`rate_limit_exceeded`) or the budget (`insufficient_quota`)."""
    code = "insufficient_quota" if refused.field == "budget_tokens" else "rate_limit_exceeded"
    return ApiError(429, refused.reason, "requests", param=refused.field, code=code,
                    headers={"Retry-After": str(max(1, math.ceil(refused.retry_after_s)))})


def estimated(request: RouterRequest) -> int:
    """A prompt's tokens, roughly, when no engine counted them: four characters a token."""
    chars = len(request.text) + sum(len(turn.content) for turn in request.messages)
    return math.ceil(chars / CHARS_PER_TOKEN)


class MeteredRouter:
    """The router connection, with each tenant's answers charged after they are given: the engine's own
    token counts; a stream cut short is charged for the pieces sent (each holds at least one token); a
    cached answer is charged as such. Everything else is the connection's."""

    def __init__(self, router: Any, tenants: Tenants, metrics: FrontMetrics) -> None:
        self._router, self._tenants, self._metrics = router, tenants, metrics
        self._pending: set[asyncio.Task] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._router, name)

    async def events(self, call: Any) -> AsyncIterator[RouterAnswer]:
        caller, opts = CURRENT.get(), call.request.options
        if caller is None or opts.health or opts.feedback or opts.cache_admin:  # answers only are charged
            async for answer in self._router.events(call):
                yield answer
            return
        pieces, charged, failed = 0, False, False
        try:
            async for answer in self._router.events(call):
                if answer.final:  # charged before the client has it: its next request sees the tokens spent
                    await self._charge(caller, answer, pieces, failed, call.request)
                    charged = True
                else:
                    pieces += 1
                yield answer
        except ApiError:
            failed = True
            raise
        finally:
            if not charged:  # an error or a cut stream, which may be ending by cancellation: charged apart
                task = asyncio.get_running_loop().create_task(self._charge(caller, None, pieces, failed, call.request))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)

    async def _charge(self, caller: Caller, final: RouterAnswer | None, pieces: int, failed: bool,
                      request: RouterRequest) -> None:
        usage = final.usage if final is not None else None
        # Without the engine's counts (an error, a cut stream), the prompt is estimated: cutting a stream
        # must not make a long prompt free.
        prompt, completion = (usage.prompt_tokens, usage.completion_tokens) if usage else (estimated(request), pieces)
        cached = final is not None and str(final.decision.get("cache", "")).startswith("hit")
        model = final.model if final is not None else None
        self._metrics.answered(caller.key.name, model, prompt, completion, cached, failed)
        try:
            await self._tenants.charge(caller.key_hash, caller.key, model, prompt, completion, cached, failed,
                                       time.time())
        except Exception:  # noqa: BLE001 - a charge that cannot be kept must not take the front down
            log.exception("could not charge %s for its answer", caller.key.name)
