"""A key's limits at the door: requests per minute, tokens per minute and a token budget per day or month.

`admit` checks, in one atomic step per key: the budget (tokens charged in the current UTC day or month
< budget_tokens), tpm (tokens charged in the last 60 s < tpm, counted to the second) and rpm (a sliding
window: fewer than rpm admissions in the last 60 s, so that no 60 s ever holds more than rpm). Only an
admitted request counts toward rpm. `charge` adds the engine-reported tokens of an answer once it is
sent; a cached answer costs no tokens (the engine did no work) and is counted as a cache hit. A budget
can thus be overspent only by the requests already admitted and still answering.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Literal, Protocol

from .db import Database
from .keys import TenantKey
from .usage import SqliteUsage, Usage

WINDOW_S = 60
ADD_TOKENS = ("INSERT INTO tenant_tokens VALUES (?, ?, ?) "
              "ON CONFLICT (key_hash, second) DO UPDATE SET tokens = tokens + excluded.tokens")
ADD_SPENT = ("INSERT INTO tenant_spent VALUES (?, ?, ?) "
             "ON CONFLICT (key_hash, period) DO UPDATE SET tokens = tokens + excluded.tokens")
LimitField = Literal["rpm", "tpm", "budget_tokens"]


@dataclass(frozen=True)
class Admitted:
    """The request may go on."""


@dataclass(frozen=True)
class Refused:
    """The request is over a limit: `field` is the key's limit at fault, `retry_after_s` (> 0) when it frees."""

    reason: str
    field: LimitField
    retry_after_s: float


Admission = Admitted | Refused


class Counters(Protocol):
    def admit(self, key_hash: str, key: TenantKey, now: float) -> Admission: ...

    def charge(self, key_hash: str, key: TenantKey, model: str | None, prompt_tokens: int, completion_tokens: int,
               cached: bool, error: bool, now: float) -> None: ...

    def close(self) -> None: ...


def periods(now: float) -> tuple[str, str]:
    """The UTC day and month `now` falls in, as ids ("2025-06-01", "2025-06")."""
    day = datetime.fromtimestamp(now, timezone.utc)
    return day.strftime("%Y-%m-%d"), day.strftime("%Y-%m")


def period_of(key: TenantKey, now: float) -> tuple[str, float]:
    """The id of the key's current budget period and the seconds until it ends."""
    day = datetime.fromtimestamp(now, timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if key.period == "day":
        end = day.timestamp() + 86400
    else:
        end = day.replace(day=1, month=day.month % 12 + 1, year=day.year + day.month // 12).timestamp()
    return periods(now)[0 if key.period == "day" else 1], end - now


def charged(prompt_tokens: int, completion_tokens: int, cached: bool) -> int:
    """What an answer costs the key's tpm and budget."""
    return 0 if cached else max(0, prompt_tokens) + max(0, completion_tokens)


def first_second(now: float) -> int:
    """The oldest whole second still inside the tpm window at `now`."""
    return math.floor(now) - WINDOW_S + 1


def tokens_free_in(buckets: Iterable[tuple[int, int]], tpm: int, now: float) -> float | None:
    """Seconds until the tokens charged in the window, (second, tokens), fall under tpm; None if they are."""
    window = sorted((second, tokens) for second, tokens in buckets if second >= first_second(now))
    used = sum(tokens for _, tokens in window)
    if used < tpm:
        return None
    for second, tokens in window:
        used -= tokens
        if used < tpm:
            return second + WINDOW_S - now  # this second's tokens leave the window then
    raise AssertionError("unreachable: tpm is positive")


def refused(key: TenantKey, field: LimitField, retry_after_s: float) -> Refused:
    wait = max(retry_after_s, 0.001)
    limit = {"rpm": f"{key.rpm} requests per minute", "tpm": f"{key.tpm} tokens per minute",
             "budget_tokens": f"a budget of {key.budget_tokens} tokens per {key.period}"}[field]
    return Refused(f"{field}: the API key {key.name!r} is limited to {limit}; retry in {math.ceil(wait)} s",
                   field, wait)


class LocalCounters:
    """The counters of one server, in its SQLite file (kept across restarts), atomic per key."""

    def __init__(self, path: str | Path = ":memory:", usage: Usage | None = None) -> None:
        self._db = Database(path)
        self.usage = usage or SqliteUsage(path)

    def admit(self, key_hash: str, key: TenantKey, now: float) -> Admission:
        if not key.limited:
            return Admitted()
        with self._db.transaction() as conn:
            if key.budget_tokens:
                period, ends_in = period_of(key, now)
                row = conn.execute("SELECT tokens FROM tenant_spent WHERE key_hash = ? AND period = ?",
                                   (key_hash, period)).fetchone()
                if row and row[0] >= key.budget_tokens:
                    return refused(key, "budget_tokens", ends_in)
            if key.tpm:
                rows = conn.execute("SELECT second, tokens FROM tenant_tokens WHERE key_hash = ?", (key_hash,))
                wait = tokens_free_in(rows.fetchall(), key.tpm, now)
                if wait is not None:
                    return refused(key, "tpm", wait)
            if key.rpm:
                conn.execute("DELETE FROM tenant_admissions WHERE key_hash = ? AND at <= ?", (key_hash, now - WINDOW_S))
                count, oldest = conn.execute("SELECT COUNT(*), MIN(at) FROM tenant_admissions WHERE key_hash = ?",
                                             (key_hash,)).fetchone()
                if count >= key.rpm:
                    return refused(key, "rpm", oldest + WINDOW_S - now)
                conn.execute("INSERT INTO tenant_admissions (key_hash, at) VALUES (?, ?)", (key_hash, now))
        return Admitted()

    def charge(self, key_hash: str, key: TenantKey, model: str | None, prompt_tokens: int, completion_tokens: int,
               cached: bool, error: bool, now: float) -> None:
        tokens = charged(prompt_tokens, completion_tokens, cached)
        if tokens:
            day, month = periods(now)
            with self._db.transaction() as conn:
                conn.execute("DELETE FROM tenant_tokens WHERE key_hash = ? AND second < ?",
                             (key_hash, first_second(now)))
                conn.execute(ADD_TOKENS, (key_hash, math.floor(now), tokens))
                conn.execute("DELETE FROM tenant_spent WHERE key_hash = ? AND period NOT IN (?, ?)",
                             (key_hash, day, month))
                conn.executemany(ADD_SPENT, [(key_hash, day, tokens), (key_hash, month, tokens)])
        self.usage.record(key.name, model, now, prompt_tokens, completion_tokens, cached, error)

    def close(self) -> None:
        self._db.close()
        self.usage.close()
