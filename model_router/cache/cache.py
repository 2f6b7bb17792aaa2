"""ResponseCache: the one object the router asks. It never raises on a store's failure: a Redis that
goes away makes every lookup a miss (counted, with a warning once), and is tried again RETRY_S later.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

import numpy as np

from .answer import CachedAnswer
from .keys import KEY_PREFIX
from .semantic import MAX_SEMANTIC_CHARS, SEMANTIC_THRESHOLD, Embed, best_match, e5_embedder, pack_record
from .store import CacheUrl, MemoryStore, RedisStore, Store, StoreError, parse_cache_url

log = logging.getLogger("model_router.cache")

MODES = ("off", "exact", "semantic")
DEFAULT_MODE = "exact"  # semantic costs an embedding on every miss: opt-in per request or per server
DEFAULT_MAX_BYTES = 256 * 2**20
DEFAULT_TTL_S = 24 * 3600.0
RETRY_S = 5.0  # after a store error, lookups skip the store this long (a dead Redis costs one timeout)


class CacheMetrics(Protocol):
    """What the cache reports (RouterMetrics has these)."""

    def cache_hit(self, mode: str) -> None: ...
    def cache_miss(self) -> None: ...
    def cache_error(self, operation: str) -> None: ...
    def cache_bytes(self, nbytes: int) -> None: ...


def check_mode(mode: str, field: str = "options.cache") -> str:
    if mode not in MODES:
        raise ValueError(f"{field}: {mode!r} is not a cache mode. Available: {list(MODES)}")
    return mode


class ResponseCache:
    """Whole answers by key (keys.key_of), optionally found by meaning within a scope (keys.scope_of).

    `url`: off | memory (default) | redis://HOST:PORT/DB. `semantic_threshold` None: no semantic index.
    `embed` (text -> unit vector) is loaded on first use when not given (multilingual e5).
    """

    def __init__(self, url: str | None = "memory", max_bytes: int = DEFAULT_MAX_BYTES, ttl_s: float = DEFAULT_TTL_S,
                 semantic_threshold: float | None = SEMANTIC_THRESHOLD, embed: Embed | None = None,
                 metrics: CacheMetrics | None = None, setting: str = "TMR_CACHE_URL") -> None:
        self.config: CacheUrl = parse_cache_url(url, setting)  # malformed: CacheSettingError naming `setting`
        if max_bytes < 1 or ttl_s <= 0:
            raise ValueError(f"cache: max_bytes ({max_bytes}) and ttl_s ({ttl_s}) must be positive")
        self.ttl_s, self.semantic_threshold, self.metrics = ttl_s, semantic_threshold, metrics
        self._embed, self._embed_lock = embed, threading.Lock()
        self._counts = {"hits": 0, "semantic_hits": 0, "misses": 0, "errors": 0, "skipped": 0}
        self._lock = threading.Lock()
        self.last_error, self._retry_at, self._down = "", 0.0, False
        self.store: Store | None = None
        if self.config.backend == "memory":
            self.store = MemoryStore(max_bytes)
        elif self.config.backend == "redis":
            self.store = RedisStore(self.config.url)
            try:
                self.store.ping()
            except StoreError as exc:  # the server starts; the cache stays off until Redis answers
                self._failed("connect", exc)

    @property
    def enabled(self) -> bool:
        return self.store is not None

    @property
    def healthy(self) -> bool:
        """False from a store error until the store answers again."""
        return not self._down

    def _usable(self) -> bool:
        return self.store is not None and time.monotonic() >= self._retry_at

    def get(self, key: str, embedding_scope: str | None = None, query_text: str | None = None,
            mode: str = DEFAULT_MODE) -> tuple[CachedAnswer | None, str]:
        """(answer, why): why is "hit", "hit: semantic 0.972", "miss" or "skipped: <reason>"."""
        check_mode(mode)
        if mode == "off" or self.store is None:
            return self._skip("off" if mode == "off" else "cache off on this server")
        if not self._usable():
            return self._skip(f"cache unavailable: {self.last_error}")
        try:
            answer = self._load(key)
            self._up()
            if answer is not None:
                return self._hit(answer, "exact", "hit")
            if mode == "semantic" and embedding_scope and query_text:
                found = self._semantic(embedding_scope, query_text)
                if found is not None:
                    return self._hit(found[0], "semantic", f"hit: semantic {found[1]:.3f}")
        except StoreError as exc:
            self._failed("get", exc)
            return self._skip(f"cache unavailable: {self.last_error}")
        self._count("misses")
        if self.metrics:
            self.metrics.cache_miss()
        return None, "miss"

    def put(self, key: str, answer: CachedAnswer, embedding_scope: str | None = None,
            query_text: str | None = None) -> bool:
        """Keep `answer` (and index `query_text` in its scope for semantic lookups); False if not kept."""
        if not self._usable():
            return False
        try:
            self.store.put(key, answer.to_bytes(), self.ttl_s)
            self._up()
            if embedding_scope and query_text and self._semantic_on(query_text):
                vector = self.embed(query_text)
                self.store.add_record(embedding_scope, key, pack_record(vector, query_text), self.ttl_s)
            if self.metrics:
                self.metrics.cache_bytes(self.store.nbytes())
            return True
        except StoreError as exc:
            self._failed("put", exc)
            return False

    def clear(self) -> int:
        """Drop every cached answer (only ours in a shared Redis); the number dropped."""
        if self.store is None:
            return 0
        try:
            count = self.store.clear()
            if self.metrics:
                self.metrics.cache_bytes(self.store.nbytes())
            return count
        except StoreError as exc:
            self._failed("clear", exc)
            return 0

    def stats(self) -> dict[str, Any]:
        """For `tmr cache stats` and the deep health report."""
        with self._lock:
            counts = dict(self._counts)
        looked = counts["hits"] + counts["misses"]
        nbytes = None
        if self._usable():
            try:
                nbytes = self.store.nbytes()
            except StoreError as exc:
                self._failed("stats", exc)
        return {"backend": self.config.backend, "url": self.config.shown, "healthy": self.healthy,
                "last_error": self.last_error, "bytes": nbytes, "ttl_s": self.ttl_s, "key_prefix": KEY_PREFIX,
                "semantic_threshold": self.semantic_threshold,
                "hit_rate": round(counts["hits"] / looked, 4) if looked else None, **counts}

    def _semantic_on(self, query_text: str) -> bool:
        return self.semantic_threshold is not None and 0 < len(query_text) <= MAX_SEMANTIC_CHARS

    def _semantic(self, scope: str, query_text: str) -> tuple[CachedAnswer, float] | None:
        if not self._semantic_on(query_text):
            return None
        records = self.store.records(scope)
        if not records:
            return None
        vector = self.embed(query_text)
        match = best_match(vector, query_text, records, self.semantic_threshold)
        if match is None:
            return None
        answer = self._load(match[0])
        return (answer, match[1]) if answer is not None else None

    def _load(self, key: str) -> CachedAnswer | None:
        blob = self.store.get(key)
        return CachedAnswer.from_bytes(blob) if blob is not None else None

    def embed(self, text: str) -> np.ndarray:
        """The text's unit e5 vector (the model loaded on first use; the learned routing policy shares it)."""
        with self._embed_lock:  # one query at a time: the encoder's threads already use the cores
            if self._embed is None:
                self._embed = e5_embedder()
            return np.asarray(self._embed(text), dtype=np.float32)

    def _hit(self, answer: CachedAnswer, mode: str, why: str) -> tuple[CachedAnswer, str]:
        self._count("hits")
        if mode == "semantic":
            self._count("semantic_hits")
        if self.metrics:
            self.metrics.cache_hit(mode)
        return answer, why

    def _skip(self, reason: str) -> tuple[None, str]:
        self._count("skipped")
        return None, f"skipped: {reason}"

    def _up(self) -> None:
        if self._down:
            self._down = False
            log.warning("response cache available again (%s)", self.config.shown)

    def _failed(self, operation: str, exc: Exception) -> None:
        first = not self._down  # warn when the store goes away, not at every retry
        with self._lock:
            self._counts["errors"] += 1
            self.last_error, self._retry_at, self._down = str(exc), time.monotonic() + RETRY_S, True
        if first:
            log.warning("response cache unavailable (%s), answering without it: %s", operation, exc)
        if self.metrics:
            self.metrics.cache_error(operation)

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1
