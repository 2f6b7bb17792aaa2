"""The in-process store, the cache URL setting, the answer's format and the ResponseCache facade."""
from __future__ import annotations

import time

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from model_router.cache import CachedAnswer, CacheSettingError, ResponseCache, key_of, parse_cache_url
from model_router.cache.answer import FORMAT
from model_router.cache.store import MemoryStore
from model_router.contract.router import RouterAnswer, Usage

from . import contract_values as cv

ANSWER = CachedAnswer(RouterAnswer("Namaste!", decision={"model": "smollm2", "use_case": "agent"},
                                   audio=bytes(range(256)) * 4, visemes=[{"t": 0.0, "v": "aa"}],
                                   finish_reason="stop", usage=Usage(5, 3)),
                      pieces=["Nam", "aste!"])
CALLS = [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Pune"}'}}]


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
    back = CachedAnswer.from_bytes(blob)
    assert back == ANSWER
    assert isinstance(back.answer.audio, bytes) and back.answer.audio == bytes(range(256)) * 4
    assert len(blob) < len(ANSWER.answer.audio) + 300  # bytes stay bytes (no base64)


def test_answer_round_trip_keeps_the_exact_router_answer() -> None:
    """Every field of the answer comes back as it was kept: usage as a Usage, tool calls, the decision."""
    answer = RouterAnswer("", decision={"model": "qwen", "use_case": "agent", "confidence": 0.75,
                                        "skipped": [{"model": "smollm2", "why": "busy"}], "fallbacks": []},
                          audio=b"RIFF\x00\xff\x01", visemes=[{"start": 0.0, "end": 0.1, "viseme": "aa"}],
                          finish_reason="tool_calls", usage=Usage(12, 7), tool_calls=CALLS)
    back = CachedAnswer.from_bytes(CachedAnswer(answer, ["a", "b"]).to_bytes())
    assert back == CachedAnswer(answer, ["a", "b"])
    assert back.answer.usage == Usage(12, 7) and back.answer.usage.total_tokens == 19
    assert back.answer.tool_calls == CALLS and back.answer.decision == answer.decision
    assert back.answer.audio == b"RIFF\x00\xff\x01" and back.answer.final is True
    # What a client is sent from the replayed copy is what it was sent the first time.
    assert RouterAnswer.decode(back.answer.encode(), final=True) == answer


@cv.FAST
@given(cv.router_answers(), st.lists(cv.unicode_text(max_size=8), max_size=4))
def test_any_answer_is_kept_exactly(answer: RouterAnswer, pieces: list[str]) -> None:
    assert CachedAnswer.from_bytes(CachedAnswer(answer, pieces).to_bytes()) == CachedAnswer(answer, pieces)


def test_answer_without_usage_or_speech_round_trips() -> None:
    answer = CachedAnswer(RouterAnswer("Paris."))
    back = CachedAnswer.from_bytes(answer.to_bytes())
    assert back == answer and back.answer.usage is None and back.answer.audio is None and back.pieces == []


OLD_LAYOUT = msgpack.packb([1, {"text": "x", "pieces": [], "audio": None, "visemes": None, "tool_calls": None,
                                "finish_reason": "stop", "usage": {}, "decision": {}}], use_bin_type=True)


@pytest.mark.parametrize("blob", [b"", b"\x00garbage", OLD_LAYOUT,
                                  msgpack.packb([FORMAT + 1, {"answer": RouterAnswer("x").record(), "pieces": []}]),
                                  msgpack.packb([FORMAT, {"pieces": []}])])
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
