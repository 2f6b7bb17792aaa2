"""When a shared store (Redis) is down: answer locally, and ask it again only every few seconds."""
from __future__ import annotations

import time
from typing import Callable

import redis

RETRY_S = 5.0  # how long a replica answers locally before it tries Redis again
# What "Redis is unavailable" looks like (a refused or timed-out connection, a server going down).
UNAVAILABLE: tuple[type[BaseException], ...] = (redis.RedisError, OSError)


class Outage:
    """Whether a store is down, as last seen: after a failure, `try_now` is False for `retry_s` seconds."""

    def __init__(self, retry_s: float = RETRY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_s, self._clock = retry_s, clock
        self.degraded = False
        self._retry_at = 0.0

    def try_now(self) -> bool:
        return not self.degraded or self._clock() >= self._retry_at

    def failed(self) -> None:
        self.degraded, self._retry_at = True, self._clock() + self.retry_s

    def ok(self) -> None:
        self.degraded = False


def connect(url: str, timeout_s: float = 1.0) -> redis.Redis:
    """A Redis client that gives up after `timeout_s`: a request waits no longer than that on a dead server."""
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True)
