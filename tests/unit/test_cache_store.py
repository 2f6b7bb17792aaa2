"""The in-process store, the cache URL setting, the answer's format and the ResponseCache facade."""
from __future__ import annotations

import time

import pytest

from model_router.cache import CachedAnswer, CacheSettingError, ResponseCache, key_of, parse_cache_url
from model_router.cache.store import MemoryStore

ANSWER = CachedAnswer(text="Namaste!", pieces=["Nam", "aste!"], audio=bytes(range(256)) * 4,
                      visemes=[{"t": 0.0, "v": "aa"}], tool_calls=None, finish_reason="stop",
                      usage={"prompt_tokens": 5, "completion_tokens": 3},
                      decision={"model": "smollm2", "use_case": "agent"})


class Recorder:
    """A CacheMetrics that writes down what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def cache_hit(self, mode: str) -> None:
        self.events.append(("hit", mode))

    def cache_miss(self) -> None:
        self.events.append(("miss",))

    def cache_error(self, operation: str) -> None:
        self.events.append(("error", operation))

    def cache_bytes(self, nbytes: int) -> None:
        self.events.append(("bytes", nbytes))


def test_answer_round_trip_keeps_audio_bytes() -> None:
    blob = ANSWER.to_bytes()
    assert CachedAnswer.from_bytes(blob) == ANSWER
    assert len(blob) < len(ANSWER.audio) + 300  # bytes stay bytes (no base64)


@pytest.mark.parametrize("blob", [b"", b"\x00garbage", CachedAnswer("x").to_bytes().replace(b"\x01", b"\x09", 1)])
def test_damaged_or_other_format_reads_as_miss(blob: bytes) -> None:
    assert CachedAnswer.from_bytes(blob) is None


def test_memory_store_is_bounded_and_evicts_least_recently_used() -> None:
    store = MemoryStore(max_bytes=3 * 1100)
    for i in range(3):
        store.put(f"k{i}", bytes(1000), ttl_s=60)
    assert store.get("k0") is not None  # k0 now most recently used: k1 goes first
    store.put("k3", bytes(1000), ttl_s=60)
    assert [k for k in ("k0", "k1", "k2", "k3") if store.get(k) is not None] == ["k0", "k2", "k3"]
    for i in range(4, 20):
        store.put(f"k{i}", bytes(1000), ttl_s=60)
    assert sum(store.get(f"k{i}") is not None for i in range(20)) == 3


def test_memory_store_expires_entries() -> None:
    store = MemoryStore(max_bytes=10_000)
    store.put("short", b"x", ttl_s=0.01)
    store.put("long", b"y", ttl_s=60)
    time.sleep(0.05)
    assert store.get("short") is None and store.get("long") == b"y"


def test_memory_store_refuses_an_entry_larger_than_itself() -> None:
    store = MemoryStore(max_bytes=1000)
    store.put("small", b"s", ttl_s=60)
    store.put("huge", bytes(5000), ttl_s=60)
    assert store.get("huge") is None and store.get("small") == b"s"


@pytest.mark.parametrize("value, backend", [
    (None, "memory"), ("", "memory"), ("memory", "memory"), ("OFF", "off"),
    ("redis://localhost:6379/0", "redis"), ("redis://:secret@cache.svc:6380/2", "redis"),
    ("redis://10.0.0.5:6379", "redis"),
])
def test_cache_url_forms(value: str | None, backend: str) -> None:
    assert parse_cache_url(value).backend == backend


@pytest.mark.parametrize("value", ["redis", "http://h:1/0", "redis://h/0", "redis://h:port/0", "redis://h:1/db",
                                   "redis://:1/0", "redis://h:1/0?x=1", "memcached://h:1"])
def test_malformed_cache_url_names_the_setting(value: str) -> None:
    with pytest.raises(CacheSettingError, match=r"^--cache: .*Allowed: off, memory, or redis://HOST:PORT/DB"):
        parse_cache_url(value, setting="--cache")


def test_password_is_not_shown() -> None:
    assert "secret" not in parse_cache_url("redis://:secret@h:1/0").shown


def test_memory_cache_hit_after_put_and_metrics() -> None:
    metrics = Recorder()
    cache = ResponseCache("memory", semantic_threshold=None, metrics=metrics)
    key = key_of({"text": "What is AI?"})
    assert cache.get(key) == (None, "miss")
    assert cache.put(key, ANSWER)
    assert cache.get(key_of({"text": "what is   ai"})) == (ANSWER, "hit")
    assert [e[0] for e in metrics.events] == ["miss", "bytes", "hit"]
    assert cache.clear() == 1
    assert cache.get(key) == (None, "miss")


def test_off_caches_nothing() -> None:
    cache = ResponseCache("off")
    key = key_of({"text": "hi"})
    assert not cache.put(key, ANSWER)
    answer, why = cache.get(key)
    assert answer is None and why.startswith("skipped: ")
    assert cache.stats()["backend"] == "off"


def test_request_mode_off_skips_a_held_answer() -> None:
    cache = ResponseCache("memory", semantic_threshold=None)
    key = key_of({"text": "hi"})
    cache.put(key, ANSWER)
    assert cache.get(key, mode="off") == (None, "skipped: off")


def test_unknown_mode_is_refused_by_name() -> None:
    allowed = r"Available: \['off', 'exact', 'semantic'\]"
    with pytest.raises(ValueError, match=r"options.cache: 'fuzzy' is not a cache mode. " + allowed):
        ResponseCache("memory").get("k", mode="fuzzy")


def test_semantic_mode_without_an_index_is_exact() -> None:
    cache = ResponseCache("memory", semantic_threshold=None)
    cache.put(key_of({"text": "What is AI?"}), ANSWER, "scope", "What is AI?")
    text = "Tell me what AI is"
    assert cache.get(key_of({"text": text}), "scope", text, mode="semantic") == (None, "miss")
