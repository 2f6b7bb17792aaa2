"""What each key used, per model and hour: requests, prompt and completion tokens, cache hits and errors.

Kept RETENTION_S (30 days) in the embedded SQLite file or in Redis (shared by the replicas). Tokens are
those charged (the engine's own counts; a cached answer's are not: it is counted as a cache hit).
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import redis
from pydantic import BaseModel

from .db import Database

HOUR_S = 3600
RETENTION_S = 30 * 86400
COUNTS = ("requests", "prompt_tokens", "completion_tokens", "cache_hits", "errors")
NO_MODEL = ""  # stored for a request no model answered


class UsageCounts(BaseModel):
    """What a key used (COUNTS): the body of every usage row and report."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    errors: int = 0


class UsageRow(UsageCounts):
    """One key's use of one model in one hour (starting at `hour`, UTC)."""

    name: str
    model: str | None
    hour: datetime


class Usage(Protocol):
    def record(self, name: str, model: str | None, now: float, prompt_tokens: int, completion_tokens: int,
               cached: bool, error: bool) -> None: ...

    def report(self, name: str | None, since: datetime, until: datetime | None = None) -> list[UsageRow]:
        """The rows of `name` (every key if None) in the hours from `since` to `until` (now if None), oldest first."""
        ...

    def close(self) -> None: ...


def counts(prompt_tokens: int, completion_tokens: int, cached: bool, error: bool) -> tuple[int, ...]:
    """One request's counts, in COUNTS' order."""
    tokens = (0, 0) if cached else (max(0, prompt_tokens), max(0, completion_tokens))
    return (1, *tokens, int(cached), int(error))


def hour_of(when: float) -> int:
    return math.floor(when / HOUR_S)


def row(name: str, model: str, hour: int, values: tuple[int, ...]) -> UsageRow:
    return UsageRow(name=name, model=model or None, hour=datetime.fromtimestamp(hour * HOUR_S, timezone.utc),
                    **dict(zip(COUNTS, values)))


def hours(since: datetime, until: datetime | None) -> range:
    """The hours asked for, no further back than what is kept."""
    end = (until or datetime.now(timezone.utc)).timestamp()
    start = max(since.timestamp(), end - RETENTION_S)
    return range(hour_of(start), hour_of(end) + 1)


class SqliteUsage:
    """Usage in the embedded SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self._db = Database(path)
        self._pruned_hour = -1

    def record(self, name: str, model: str | None, now: float, prompt_tokens: int, completion_tokens: int,
               cached: bool, error: bool) -> None:
        hour = hour_of(now)
        adds = ", ".join(f"{c} = {c} + excluded.{c}" for c in COUNTS)
        with self._db.transaction() as conn:
            conn.execute(f"INSERT INTO tenant_usage VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                         f"ON CONFLICT (name, model, hour) DO UPDATE SET {adds}",
                         (name, model or NO_MODEL, hour, *counts(prompt_tokens, completion_tokens, cached, error)))
            if hour != self._pruned_hour:  # once an hour is enough: rows are hourly
                conn.execute("DELETE FROM tenant_usage WHERE hour < ?", (hour - RETENTION_S // HOUR_S,))
                self._pruned_hour = hour

    def report(self, name: str | None, since: datetime, until: datetime | None = None) -> list[UsageRow]:
        span = hours(since, until)
        rows = self._db.read(f"SELECT name, model, hour, {', '.join(COUNTS)} FROM tenant_usage "
                             "WHERE hour >= ? AND hour < ? AND (? IS NULL OR name = ?) ORDER BY hour, name, model",
                             (span.start, span.stop, name, name))
        return [row(n, m, h, tuple(values)) for n, m, h, *values in rows]

    def close(self) -> None:
        self._db.close()


class RedisUsage:
    """Usage in Redis: one hash per hour, a field per (key name, model, count), expiring after RETENTION_S."""

    PREFIX = "tmr:tenant:usage"

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client  # its owner closes it

    def record(self, name: str, model: str | None, now: float, prompt_tokens: int, completion_tokens: int,
               cached: bool, error: bool) -> None:
        key = f"{self.PREFIX}:{hour_of(now)}"
        pipe = self._redis.pipeline(transaction=True)
        for count, value in zip(COUNTS, counts(prompt_tokens, completion_tokens, cached, error)):
            if value:
                pipe.hincrby(key, f"{name}|{model or NO_MODEL}|{count}", value)
        pipe.expire(key, RETENTION_S + HOUR_S)
        pipe.execute()

    def report(self, name: str | None, since: datetime, until: datetime | None = None) -> list[UsageRow]:
        span = hours(since, until)
        pipe = self._redis.pipeline(transaction=False)
        for hour in span:
            pipe.hgetall(f"{self.PREFIX}:{hour}")
        rows = []
        for hour, fields in zip(span, pipe.execute()):
            found: dict[tuple[str, str], dict[str, int]] = {}
            for field, value in fields.items():
                # A key's name has no "|" and a count's neither: the model is what lies between.
                who, _, rest = field.partition("|")
                model, _, count = rest.rpartition("|")
                if name is None or who == name:
                    found.setdefault((who, model), {})[count] = int(value)
            rows += [row(who, model, hour, tuple(values.get(c, 0) for c in COUNTS))
                     for (who, model), values in sorted(found.items())]
        return rows

    def close(self) -> None:
        pass
