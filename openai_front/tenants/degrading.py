"""Counters that outlive a Redis outage: while Redis fails, each replica counts on its own (never no limits).

During an outage a key's limits hold per replica (n replicas may admit up to n times its rpm, and each
counts budget from what it counted itself); Redis is asked again every few seconds, and once it answers
every replica shares its counters again.
"""
from __future__ import annotations

import logging
from typing import Callable, TypeVar

from .keys import TenantKey
from .limits import Admission, Counters
from .outage import UNAVAILABLE, Outage

log = logging.getLogger(__name__)
T = TypeVar("T")


class Degrading:
    """`primary` (RedisCounters) while it answers, else `fallback` (this replica's LocalCounters)."""

    def __init__(self, primary: Counters, fallback: Counters, outage: Outage | None = None) -> None:
        self.primary, self.fallback = primary, fallback
        self._outage = outage or Outage()

    @property
    def degraded(self) -> bool:
        """Limits are counted per replica now (Redis is unreachable)."""
        return self._outage.degraded

    def admit(self, key_hash: str, key: TenantKey, now: float) -> Admission:
        return self._either(lambda counters: counters.admit(key_hash, key, now))

    def charge(self, key_hash: str, key: TenantKey, model: str | None, prompt_tokens: int, completion_tokens: int,
               cached: bool, error: bool, now: float) -> None:
        self._either(lambda counters: counters.charge(key_hash, key, model, prompt_tokens, completion_tokens,
                                                      cached, error, now))

    def close(self) -> None:
        self.primary.close()
        self.fallback.close()

    def _either(self, work: Callable[[Counters], T]) -> T:
        if self._outage.try_now():
            try:
                result = work(self.primary)
            except UNAVAILABLE as exc:
                if not self._outage.degraded:
                    log.warning("tenant counters: Redis is unreachable (%s); counting per replica", exc)
                self._outage.failed()
            else:
                if self._outage.degraded:
                    log.warning("tenant counters: Redis answers again; counting across replicas")
                self._outage.ok()
                return result
        return work(self.fallback)
