"""The front's tenants, built from one setting: where keys, counters and usage live.

`--keys PATH` (a SQLite file: one front, kept across restarts) or `--keys redis://...` (every replica
shares them; limits fall back to each replica's own counting while Redis is away, never to none).
The store's calls are synchronous and short (one round trip): the front runs them in a worker
thread so that the event loop keeps serving.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .degrading import Degrading
from .keys import KeyStore, TenantKey
from .keys_redis import RedisKeyStore
from .keys_sqlite import SqliteKeyStore
from .limits import Admission, Counters, LocalCounters
from .limits_redis import RedisCounters
from .outage import Outage
from .usage import SqliteUsage, Usage

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
FRESH_EVERY_S = 1.0
NOBODY = "0" * 64  # a hash no key has: reading it brings the revocations


@dataclass
class Tenants:
    keys: KeyStore
    counters: Counters
    usage: Usage
    admin_key: str | None = None

    @property
    def degraded(self) -> bool:
        """Redis is away: keys are read from this replica's last view, limits counted here alone."""
        return bool(getattr(self.keys, "degraded", False) or getattr(self.counters, "degraded", False))

    async def find(self, key_hash: str) -> TenantKey | None:
        return await asyncio.to_thread(self.keys.by_hash, key_hash)

    async def admit(self, key_hash: str, key: TenantKey, now: float) -> Admission:
        return await asyncio.to_thread(self.counters.admit, key_hash, key, now)

    async def charge(self, key_hash: str, key: TenantKey, model: str | None, prompt_tokens: int,
                     completion_tokens: int, cached: bool, error: bool, now: float) -> None:
        await asyncio.to_thread(self.counters.charge, key_hash, key, model, prompt_tokens, completion_tokens,
                                cached, error, now)

    async def keep_fresh(self, every_s: float = FRESH_EVERY_S) -> None:
        """Read the shared store every `every_s` (any read brings every revocation since the last), so that
        a replica that must answer from its own view while Redis is away knows of revocations up to then."""
        if not isinstance(self.keys, RedisKeyStore):
            return
        while True:
            await asyncio.sleep(every_s)
            await self.find(NOBODY)

    def close(self) -> None:
        self.counters.close()
        self.keys.close()


def open_tenants(where: str, admin_key: str | None) -> Tenants:
    """The store at `where`; with Redis, each replica counts in its own memory while Redis is away."""
    if where.startswith(REDIS_SCHEMES):
        outage = Outage()
        shared = RedisCounters(where)
        local = LocalCounters(":memory:", SqliteUsage(":memory:"))
        return Tenants(RedisKeyStore(where, outage=outage), Degrading(shared, local, outage), shared.usage, admin_key)
    usage = SqliteUsage(where)
    return Tenants(SqliteKeyStore(where), LocalCounters(where, usage), usage, admin_key)
