"""Stored responses (`store`, `previous_response_id`, GET and DELETE /v1/responses/{id}), bounded, where
every replica of the front finds them: in the front's process by default, in Redis when configured.

A record is the response as it was answered and the conversation that led to it (the router's turns),
which a later request continues with `previous_response_id`. Each is kept under its owner (a hash of
the API key that made it), so that a caller sees only its own.
"""
from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any, Protocol

import redis.asyncio as aioredis

from ..errors import ApiError

DEFAULT_MAX_RESPONSES = 1000  # in the front's process: the oldest go first
DEFAULT_MAX_BYTES = 256 * 2**20  # and no more than this in all (a record is at most a conversation's limit)
DEFAULT_TTL_S = 7 * 24 * 3600  # in Redis: a week after it was answered
PREFIX = "tmr:response"

Record = dict[str, Any]  # {"response": the Response object, "turns": the conversation, as the router's turns}


def owner_of(api_key: str | None) -> str:
    """Whose a response is: a hash of the key that made it (never the key itself)."""
    return hashlib.sha256((api_key or "").encode()).hexdigest()[:32]


class ResponseStore(Protocol):
    async def put(self, owner: str, rid: str, record: Record) -> None: ...
    async def get(self, owner: str, rid: str) -> Record | None: ...
    async def delete(self, owner: str, rid: str) -> bool: ...
    async def close(self) -> None: ...


class MemoryStore:
    """The newest `limit` responses within `max_bytes`, in this process (one front; lost when it stops)."""

    def __init__(self, limit: int = DEFAULT_MAX_RESPONSES, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.limit, self.max_bytes, self.size = limit, max_bytes, 0
        self._records: OrderedDict[tuple[str, str], str] = OrderedDict()

    async def put(self, owner: str, rid: str, record: Record) -> None:
        raw = json.dumps(record, ensure_ascii=False)  # a copy, as Redis keeps it
        self._records[(owner, rid)] = raw
        self.size += len(raw)
        while len(self._records) > self.limit or self.size > self.max_bytes:
            self.size -= len(self._records.popitem(last=False)[1])

    async def get(self, owner: str, rid: str) -> Record | None:
        raw = self._records.get((owner, rid))
        return None if raw is None else json.loads(raw)

    async def delete(self, owner: str, rid: str) -> bool:
        raw = self._records.pop((owner, rid), None)
        self.size -= len(raw or "")
        return raw is not None

    async def close(self) -> None:
        self._records.clear()


class RedisStore:
    """In Redis, for `ttl_s` seconds: every replica of the front reads the same responses."""

    def __init__(self, url: str, ttl_s: int = DEFAULT_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._redis = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    @staticmethod
    def _key(owner: str, rid: str) -> str:
        return f"{PREFIX}:{owner}:{rid}"

    async def put(self, owner: str, rid: str, record: Record) -> None:
        await self._call(self._redis.set(self._key(owner, rid), json.dumps(record, ensure_ascii=False), ex=self.ttl_s))

    async def get(self, owner: str, rid: str) -> Record | None:
        raw = await self._call(self._redis.get(self._key(owner, rid)))
        return None if raw is None else json.loads(raw)

    async def delete(self, owner: str, rid: str) -> bool:
        return bool(await self._call(self._redis.delete(self._key(owner, rid))))

    async def close(self) -> None:
        await self._redis.aclose()

    @staticmethod
    async def _call(work: Any) -> Any:
        try:
            return await work
        except aioredis.RedisError as exc:
            raise ApiError(503, f"the response store (Redis) is unavailable: {exc}", "server_error",
                           code="unavailable", headers={"Retry-After": "1"}) from None


def open_store(where: str) -> ResponseStore:
    """`memory` (or `memory:N`, the newest N), or a redis:// URL."""
    if where.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(where)
    kind, _, limit = where.partition(":")
    if kind != "memory" or (limit and not limit.isdigit()):
        raise ValueError(f"responses store: {where!r} unknown. Available: memory, memory:N, redis://host:port/db")
    return MemoryStore(int(limit) if limit else DEFAULT_MAX_RESPONSES)
