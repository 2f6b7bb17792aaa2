"""The admin API (`/admin`, behind the admin key): tenant keys created, listed, changed and revoked, and what
they used; and `GET /v1/tmr/usage`, where a tenant's key reads its own use, limits and budget left.

Errors are OpenAI's shape; a store that cannot be reached (Redis) is a 503 with Retry-After.
"""
from __future__ import annotations

import asyncio
import hmac
import math
from datetime import datetime, timedelta, timezone
from typing import Callable, Literal, TypeVar

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ConfigDict, ValidationError

from ..bodies import parse_body
from ..catalog import pickable
from ..errors import ApiError, bad_request, invalid_body, unauthorized
from .enforce import authenticate, presented
from .keys import KeyExists, KeyFields, KeySpec, Name, Period, StoreUnavailable, TenantKey, UnknownKey, UtcTime
from .limits import period_of
from .outage import RETRY_S, UNAVAILABLE
from .service import Tenants
from .usage import COUNTS, UsageCounts, UsageRow

OFF = "the admin API is off: start the front with --keys and --admin-key"
WINDOW = timedelta(hours=24)  # what a report covers when no `since` is given
Group = Literal["hour", "day"]
T = TypeVar("T")


class KeyCreated(TenantKey):
    """A new key's record and its key string, shown this once (stores keep only its hash)."""

    key: str


class KeyList(BaseModel):
    data: list[TenantKey]


class UsageQuery(BaseModel):
    """GET /admin/usage's query: one key's rows (every key's if `key` is absent) from `since` to `until`."""

    model_config = ConfigDict(extra="forbid")

    key: Name | None = None
    since: UtcTime | None = None  # None: 24 h before `until`
    until: UtcTime | None = None  # None: now
    group: Group = "hour"



class UsageBucket(UsageCounts):
    """One key's use of one model from `start`, for an hour, a day, or a whole report (`/v1/tmr/usage`)."""

    name: str
    model: str | None  # None: requests no model answered (refused by the router, failed)
    start: datetime


class UsageReport(BaseModel):
    data: list[UsageBucket]


class Budget(BaseModel):
    """A key's token budget in its current period (UTC), as its recorded usage counts it."""

    tokens: int
    period: Period
    spent: int
    left: int
    resets_at: datetime


class OwnUsage(BaseModel):
    """GET /v1/tmr/usage: the signed-in key's use per model over the last 24 h, its limits and budget left."""

    name: str
    since: datetime
    until: datetime
    data: list[UsageBucket]
    limits: KeyFields
    budget: Budget | None


def _tenants(request: Request) -> Tenants | None:
    return getattr(request.app.state, "tenants", None)


async def check_admin(request: Request, authorization: str | None = Header(None)) -> None:
    """The admin key, as `Authorization: Bearer <admin key>`; the API answers 404 where none is configured."""
    tenants = _tenants(request)
    if tenants is None or not tenants.admin_key:
        raise ApiError(404, OFF, code="admin_api_off")
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise unauthorized("no admin key: send the header 'Authorization: Bearer <admin key>'")
    if not hmac.compare_digest(key.strip().encode(), tenants.admin_key.encode()):
        raise unauthorized("incorrect admin key")


async def signed_in(request: Request, authorization: str | None = Header(None),
                    x_api_key: str | None = Header(None)) -> None:
    """The caller's key, read as on every /v1 route (tenants.enforce)."""
    await authenticate(request, presented(authorization, x_api_key))


admin = APIRouter(prefix="/admin", dependencies=[Depends(check_admin)])
me = APIRouter(dependencies=[Depends(signed_in)])


async def _store(work: Callable[..., T], *args: object) -> T:
    """A store call in a worker thread, its failures as the API's errors."""
    try:
        return await asyncio.to_thread(work, *args)
    except KeyExists as exc:
        raise ApiError(409, str(exc), param="name", code="key_exists") from None
    except UnknownKey as exc:
        raise ApiError(404, f"name: {exc}", param="name", code="key_not_found") from None
    except (StoreUnavailable, *UNAVAILABLE) as exc:
        raise ApiError(503, f"the tenant store is unavailable: {exc}", "server_error", code="unavailable",
                       headers={"Retry-After": str(math.ceil(RETRY_S))}) from None


def _check_models(request: Request, fields: KeyFields) -> None:
    """Every model a key is kept to must be one this front's router may answer with."""
    state = request.app.state
    available = pickable(state.registry, state.settings.profile)
    for i, name in enumerate(fields.models or []):
        if name not in available:
            raise bad_request(f"models[{i}]", f"{name!r} unknown. Available: {available}")


@admin.post("/keys", status_code=201)
async def create_key(request: Request) -> KeyCreated:
    spec = await parse_body(request, KeySpec)
    _check_models(request, spec)
    key, record = await _store(_tenants(request).keys.create, spec)
    return KeyCreated(key=key, **record.model_dump())


@admin.get("/keys")
async def list_keys(request: Request) -> KeyList:
    return KeyList(data=await _store(_tenants(request).keys.list))


@admin.patch("/keys/{name}")
async def update_key(request: Request, name: str) -> TenantKey:
    changes = await parse_body(request, KeyFields)
    _check_models(request, changes)
    return await _store(_tenants(request).keys.update, name, changes)


@admin.delete("/keys/{name}")
async def revoke_key(request: Request, name: str) -> TenantKey:
    return await _store(_tenants(request).keys.revoke, name)


@admin.get("/usage")
async def usage(request: Request) -> UsageReport:
    try:
        query = UsageQuery.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise invalid_body(exc, UsageQuery) from None
    until = query.until or datetime.now(timezone.utc)
    since = query.since or until - WINDOW
    if since >= until:
        raise bad_request("since", f"{since.isoformat()} is not before until ({until.isoformat()})")
    tenants = _tenants(request)
    if query.key is not None and query.key not in {k.name for k in await _store(tenants.keys.list)}:
        raise ApiError(404, f"key: no key named {query.key!r}", param="key", code="key_not_found")
    rows = await _store(tenants.usage.report, query.key, since, until)
    return UsageReport(data=buckets(rows, lambda hour: hour if query.group == "hour" else hour.replace(hour=0)))


@me.get("/v1/tmr/usage")
async def own_usage(request: Request) -> OwnUsage:
    tenants, key = _tenants(request), getattr(request.state, "tenant", None)
    if tenants is None or key is None:
        raise ApiError(404, "no usage to show: this request's key is not a tenant's key (made with "
                            "POST /admin/keys)", code="not_a_tenant_key")
    until = datetime.now(timezone.utc)
    since = until - WINDOW
    period_start, resets_in = _period(key, until)
    rows = await _store(tenants.usage.report, key.name, min(since, period_start), until)
    budget = None
    if key.budget_tokens:
        spent = sum(r.prompt_tokens + r.completion_tokens for r in rows if r.hour >= period_start)
        budget = Budget(tokens=key.budget_tokens, period=key.period, spent=spent,
                        left=max(0, key.budget_tokens - spent), resets_at=until + timedelta(seconds=resets_in))
    recent = [r for r in rows if r.hour >= since.replace(minute=0, second=0, microsecond=0)]
    return OwnUsage(name=key.name, since=since, until=until, data=buckets(recent, lambda _: since),
                    limits=KeyFields.model_validate(key.model_dump(include=set(KeyFields.model_fields))),
                    budget=budget)


def _period(key: TenantKey, now: datetime) -> tuple[datetime, float]:
    """When the key's current budget period began, and the seconds until it ends."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return (day if key.period == "day" else day.replace(day=1)), period_of(key, now.timestamp())[1]


def buckets(rows: list[UsageRow], start_of: Callable[[datetime], datetime]) -> list[UsageBucket]:
    """Hourly rows summed per key, model and the bucket `start_of` puts each row's hour in, in order."""
    sums: dict[tuple[datetime, str, str], dict[str, int]] = {}
    for row in rows:
        found = sums.setdefault((start_of(row.hour), row.name, row.model or ""), dict.fromkeys(COUNTS, 0))
        for count in COUNTS:
            found[count] += getattr(row, count)
    return [UsageBucket(name=name, model=model or None, start=start, **values)
            for (start, name, model), values in sorted(sums.items())]
