"""Where cached answers live: an in-process LRU bounded by bytes, or Redis shared by every replica.

Both keep two things: answers (key -> bytes, with a TTL) and, per semantic scope, the records of
the queries answered in it (key -> packed embedding and text). A store raises StoreError when it
cannot do its job; the ResponseCache above it turns that into a miss.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from .keys import KEY_PREFIX

MAX_PER_SCOPE = 512  # semantic candidates kept per scope: a lookup compares against all of them
REDIS_TIMEOUT_S = 0.25  # a cache that answers slower than generation is no cache
ALLOWED = "off, memory, or redis://HOST:PORT/DB"


class StoreError(RuntimeError):
    """The store could not be reached or refused the operation."""


class CacheSettingError(ValueError):
    """The cache setting (TMR_CACHE_URL, --cache) is malformed."""


@dataclass(frozen=True)
class CacheUrl:
    backend: str  # off | memory | redis
    url: str = ""

    @property
    def shown(self) -> str:
        """The URL without its password, for logs and stats."""
        parts = urlsplit(self.url)
        if parts.password:
            return self.url.replace(f":{parts.password}@", ":***@", 1)
        return self.url or self.backend


def parse_cache_url(value: str | None, setting: str = "TMR_CACHE_URL") -> CacheUrl:
    """`off`, `memory` (also when unset) or `redis://[:password@]HOST:PORT/DB` (rediss:// for TLS)."""
    text = (value or "memory").strip()
    if text.lower() in ("off", "memory"):
        return CacheUrl(text.lower())
    parts = urlsplit(text)
    if parts.scheme not in ("redis", "rediss"):
        raise CacheSettingError(f"{setting}: {text!r} is not a cache URL. Allowed: {ALLOWED}")
    try:
        port = parts.port
    except ValueError:
        raise CacheSettingError(f"{setting}: {text!r} has a bad port. Allowed: {ALLOWED}") from None
    db = parts.path.strip("/")
    if not parts.hostname or port is None or (db and not db.isdigit()) or parts.query or parts.fragment:
        raise CacheSettingError(f"{setting}: {text!r} needs a host, a port and a numeric database "
                                f"(redis://HOST:PORT/DB). Allowed: {ALLOWED}")
    return CacheUrl("redis", text)


class Store(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def put(self, key: str, blob: bytes, ttl_s: float) -> None: ...
    def add_record(self, scope: str, key: str, record: bytes, ttl_s: float) -> None: ...
    def records(self, scope: str) -> dict[str, bytes]: ...
    def clear(self) -> int: ...
    def nbytes(self) -> int: ...


class MemoryStore:
    """LRU over answers and semantic records together, bounded by their bytes; entries expire."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._scopes: dict[str, OrderedDict[str, bytes]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[1] < time.monotonic():
                self._drop(key)
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: str, blob: bytes, ttl_s: float) -> None:
        if len(blob) + len(key) > self.max_bytes:
            return  # larger than the whole cache: keeping it would evict everything else
        with self._lock:
            self._drop(key)
            self._items[key] = (blob, time.monotonic() + ttl_s)
            self._bytes += len(blob) + len(key)
            self._evict()

    def add_record(self, scope: str, key: str, record: bytes, ttl_s: float) -> None:
        with self._lock:
            records = self._scopes.setdefault(scope, OrderedDict())
            self._bytes -= len(records.pop(key, b""))
            records[key] = record
            self._bytes += len(record)
            while len(records) > MAX_PER_SCOPE:
                self._bytes -= len(records.popitem(last=False)[1])
            self._evict()

    def records(self, scope: str) -> dict[str, bytes]:
        with self._lock:
            records = self._scopes.get(scope, {})
            stale = [key for key in records if key not in self._items]  # their answers were evicted
            for key in stale:
                self._bytes -= len(records.pop(key))
            return dict(records)

    def clear(self) -> int:
        with self._lock:
            count = len(self._items)
            self._items.clear()
            self._scopes.clear()
            self._bytes = 0
            return count

    def nbytes(self) -> int:
        return self._bytes

    def _drop(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self._bytes -= len(item[0]) + len(key)

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and self._items:
            self._drop(next(iter(self._items)))
        while self._bytes > self.max_bytes and self._scopes:  # records alone over the bound
            scope, records = next(iter(self._scopes.items()))
            self._bytes -= sum(len(r) for r in records.values())
            del self._scopes[scope]


class RedisStore:
    """Answers as plain keys with a TTL, semantic records as one hash per scope; all under KEY_PREFIX,
    so that `clear` leaves the rest of a shared database alone."""

    def __init__(self, url: str, timeout_s: float = REDIS_TIMEOUT_S) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._errors = (redis.RedisError, OSError)
        # No retries: a Redis that is gone must cost one short timeout, not a request's latency.
        self._client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                            retry=Retry(NoBackoff(), 0))

    def _call(self, what: str, fn, *args):
        try:
            return fn(*args)
        except self._errors as exc:
            raise StoreError(f"redis {what}: {exc}") from None

    def ping(self) -> None:
        self._call("ping", self._client.ping)

    def get(self, key: str) -> bytes | None:
        return self._call("get", self._client.get, key)

    def put(self, key: str, blob: bytes, ttl_s: float) -> None:
        self._call("set", self._client.set, key, blob, max(1, int(ttl_s)))

    def add_record(self, scope: str, key: str, record: bytes, ttl_s: float) -> None:
        pipe = self._client.pipeline(transaction=False)
        pipe.hset(scope, key, record)
        pipe.expire(scope, max(1, int(ttl_s)))
        pipe.hlen(scope)
        size = self._call("hset", pipe.execute)[-1]
        if size > MAX_PER_SCOPE:  # a hash has no order: drop some other record to stay bounded
            field = self._call("hrandfield", self._client.hrandfield, scope)
            if field is not None and field.decode() != key:
                self._call("hdel", self._client.hdel, scope, field)

    def records(self, scope: str) -> dict[str, bytes]:
        raw = self._call("hgetall", self._client.hgetall, scope)
        return {k.decode(): v for k, v in raw.items()}

    def clear(self) -> int:
        def unlink_all() -> int:
            count = 0
            for batch in _chunks(self._client.scan_iter(match=KEY_PREFIX + "*", count=500), 500):
                count += self._client.unlink(*batch)
            return count
        return self._call("clear", unlink_all)

    def nbytes(self) -> int:
        """The Redis server's memory in use (it may hold more than our entries)."""
        return int(self._call("info", self._client.info, "memory").get("used_memory", 0))


def _chunks(items, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
