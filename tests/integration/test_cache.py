"""The response cache on a real redis-server (Debian's, started here on a free port), seen from a plain
Redis client beside it; then through routers on that Redis (real tritonservers), seen from their
clients, Redis itself, Triton's repository index and the LLM backend's own token counter."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Iterator

import pytest
import redis

from client import RouterClient
from client.api import InferenceServerException
from launcher import TritonServer, free_port
from model_router.cache import CachedAnswer, ResponseCache, key_of, scope_of
from model_router.cache import cache as cache_module
from model_router.cache.keys import KEY_PREFIX
from model_router.contract.router import RouterAnswer, Usage

from ..unit.test_cache_keys import BASE, DIFFERENT, variant
from .conftest import LLM, start_server, stop_server
from .observe import llm_tokens, metric, model_states, settled, wait_for
from .services import RedisServer, ask

pytestmark = pytest.mark.integration
ANSWER = CachedAnswer(RouterAnswer("Paris.", decision={"model": "smollm2_135m_instruct"}, audio=b"RIFF\x00\x01fake wav",
                                   visemes=[{"t": 0, "v": "p"}], finish_reason="stop", usage=Usage(4, 3),
                                   tool_calls=[{"name": "weather", "arguments": "{}"}]), pieces=["Par", "is."])


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def ours(server: RedisServer) -> list[bytes]:
    return sorted(server.client.scan_iter(match=KEY_PREFIX + "*"))


def test_round_trip_through_redis_with_a_ttl(redis_server: RedisServer) -> None:
    cache = ResponseCache(redis_server.url, ttl_s=600, semantic_threshold=None)
    key = key_of(BASE)
    assert cache.put(key, ANSWER)
    assert ours(redis_server) == [key.encode()]
    assert 0 < redis_server.client.ttl(key) <= 600
    assert cache.get(key) == (ANSWER, "hit")


def test_two_instances_on_one_redis_share_hits(redis_server: RedisServer) -> None:
    first, second = (ResponseCache(redis_server.url, semantic_threshold=None) for _ in range(2))
    key = key_of({"text": "What is the capital of France?"})
    assert second.get(key) == (None, "miss")
    first.put(key, ANSWER)
    assert second.get(key_of({"text": "what is the capital of france"})) == (ANSWER, "hit")


@pytest.mark.parametrize("field", list(DIFFERENT))
def test_a_changed_answer_field_misses(redis_server: RedisServer, field: str) -> None:
    cache = ResponseCache(redis_server.url, semantic_threshold=None)
    cache.put(key_of(BASE), ANSWER)
    assert cache.get(key_of(variant(**DIFFERENT[field]))) == (None, "miss")
    assert cache.get(key_of(BASE)) == (ANSWER, "hit")


def test_clear_drops_only_the_caches_keys(redis_server: RedisServer) -> None:
    redis_server.client.set("someone:else", b"keep me")
    cache = ResponseCache(redis_server.url, semantic_threshold=None)
    for i in range(3):
        cache.put(key_of({"text": f"question {i}"}), ANSWER)
    assert len(ours(redis_server)) == 3
    assert cache.clear() == 3
    assert ours(redis_server) == [] and redis_server.client.get("someone:else") == b"keep me"


def test_redis_killed_mid_run_degrades_to_no_cache(redis_server: RedisServer, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_module, "RETRY_S", 0.2)
    errors: list[str] = []
    metrics = type("Errors", (), {"cache_error": lambda self, op: errors.append(op), "cache_hit": lambda self, m: None,
                                  "cache_miss": lambda self: None, "cache_bytes": lambda self, n: None})()
    cache = ResponseCache(redis_server.url, semantic_threshold=None, metrics=metrics)
    key = key_of({"text": "hello"})
    cache.put(key, ANSWER)
    redis_server.stop(signal.SIGKILL)
    answer, why = cache.get(key)
    assert answer is None and why.startswith("skipped: cache unavailable")
    assert not cache.healthy and cache.stats()["last_error"]
    time.sleep(0.3)
    assert cache.put(key, ANSWER) is False
    assert errors == ["get", "put"]
    # Redis back on the same port (empty: no persistence): the cache takes it up again by itself.
    again = RedisServer(tmp_path, redis_server.port)
    try:
        time.sleep(0.3)
        assert cache.put(key, ANSWER) and cache.healthy
        assert ours(again) == [key.encode()]
    finally:
        again.stop()


def test_unreachable_redis_at_startup_is_a_warning_and_no_cache(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with caplog.at_level("WARNING", logger="model_router.cache"):
        cache = ResponseCache(url, semantic_threshold=None)
    assert "response cache unavailable" in caplog.text
    stats = cache.stats()
    assert stats["backend"] == "redis" and stats["healthy"] is False and "127.0.0.1" in stats["last_error"]
    assert cache.get(key_of({"text": "hi"}))[1].startswith("skipped: cache unavailable")


def test_semantic_hits_are_shared_across_instances(redis_server: RedisServer) -> None:
    first = ResponseCache(redis_server.url)
    asked = {"text": "What is the boiling point of water in Celsius?", "options": {"language": "en"}}
    first.put(key_of(asked), ANSWER, scope_of(asked), asked["text"])
    second = ResponseCache(redis_server.url)
    for text, hit in [("What's the boiling point of water in Celsius?", True),
                      ("What is the boiling point of water in Fahrenheit?", False)]:
        fields = {**asked, "text": text}
        answer, why = second.get(key_of(fields), scope_of(fields), text, mode="semantic")
        assert (answer == ANSWER) is hit, why


# -- through the router: two tritonservers on one Redis --------------------------------------------
ADMIN_KEY = "cache-test-key"


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    """The module's Redis, in a list: the test that kills it puts its replacement (same port) there."""
    servers = [RedisServer(tmp_path_factory.mktemp("redis"))]
    yield servers
    servers[-1].stop()


def _router_on(redis_server: RedisServer, load: list[str]) -> TritonServer:
    return start_server(["query_classifier", "router", *load], admin_key=ADMIN_KEY,
                        env={"TMR_CACHE_URL": redis_server.url})


@pytest.fixture(scope="module")
def first(shared_redis: list[RedisServer]) -> Iterator[TritonServer]:
    server = _router_on(shared_redis[0], [LLM])
    yield server
    stop_server(server)


def test_a_repeated_greedy_request_is_a_hit_with_the_same_answer(first: TritonServer,
                                                                 shared_redis: list[RedisServer]) -> None:
    question = f"Name one colour of the rainbow ({os.getpid()})."
    answer = ask(first, question)
    assert answer.decision["cache"] == "miss" and answer.text
    held, spent = ours(shared_redis[-1]), settled(lambda: llm_tokens(first))
    assert held and spent > 0
    again = ask(first, "  " + question.upper().replace(" ", "  "))  # the same question, typed otherwise
    assert again.decision["cache"] == "hit" and again.text == answer.text
    assert again.decision["model"] == answer.decision["model"] and again.usage == answer.usage
    assert settled(lambda: llm_tokens(first)) == spent  # nothing generated
    assert ours(shared_redis[-1]) == held  # nothing added


def test_a_streamed_request_served_from_the_cache_streams_the_cached_pieces(first: TritonServer) -> None:
    question, streamed, replayed = f"Write one sentence about the sea ({os.getpid()}).", [], []
    text = {"stream": True, "use_case": "agent"}  # a text answer (a "say ..." may be read aloud instead)
    answer = ask(first, question, text, "grpc", streamed)
    assert answer.decision["cache"] == "miss" and len(streamed) > 1
    spent = settled(lambda: llm_tokens(first))
    again = ask(first, question, text, "grpc", replayed)
    assert again.decision["cache"] == "hit" and replayed == streamed
    assert settled(lambda: llm_tokens(first)) == spent  # nothing generated
    whole = ask(first, question, {"use_case": "agent"})  # asked whole, the same cached answer
    assert whole.decision["cache"] == "hit" and whole.text == "".join(streamed)


def test_a_sampled_request_without_a_seed_is_never_cached(first: TritonServer,
                                                          shared_redis: list[RedisServer]) -> None:
    held = ours(shared_redis[-1])
    sampled = {"sampling_parameters": {"max_tokens": 8, "temperature": 0.9}}
    for _ in range(2):
        spent = settled(lambda: llm_tokens(first, absent=0.0))
        answer = ask(first, f"Say a random word ({os.getpid()}).", sampled)
        assert answer.decision["cache"].startswith("skipped: sampled without a seed")
        assert wait_for(lambda: llm_tokens(first, absent=0.0) > spent, 60), "answered without the LLM"
    assert ours(shared_redis[-1]) == held
    seeded = {"sampling_parameters": {"max_tokens": 8, "temperature": 0.9, "seed": 5}}
    assert [ask(first, f"Say a random word ({os.getpid()}).", seeded).decision["cache"] for _ in range(2)] == \
        ["miss", "hit"]


@pytest.mark.parametrize("change", [{"sampling_parameters": {"max_tokens": 9, "temperature": 0}},
                                    {"language": "hi"}, {"use_case": "agent"}, {"prefer": "cost"},
                                    {"response_format": {"type": "json_object"}}])
def test_an_answer_changing_field_is_another_key(first: TritonServer, shared_redis: list[RedisServer],
                                                 change: dict) -> None:
    question = f"What is two plus two ({os.getpid()})?"
    ask(first, question)
    held = ours(shared_redis[-1])
    changed = ask(first, question, change)
    assert changed.decision["cache"] == "miss" and len(ours(shared_redis[-1])) == len(held) + 1
    assert ask(first, question).decision["cache"] == "hit"


def test_a_semantic_request_gets_a_paraphrases_answer_never_a_near_miss(first: TritonServer) -> None:
    semantic = {"cache": "semantic", "use_case": "agent", "language": "en"}
    answer = ask(first, f"What is the capital of France? ({os.getpid()})", semantic)
    assert answer.decision["cache"] == "miss"
    spent = settled(lambda: llm_tokens(first))
    again = ask(first, f"What's the capital city of France? ({os.getpid()})", semantic)
    assert again.decision["cache"].startswith("hit: semantic") and again.text == answer.text
    assert settled(lambda: llm_tokens(first)) == spent  # nothing generated
    other = ask(first, f"What is the capital of Germany? ({os.getpid()})", semantic)
    assert other.decision["cache"] == "miss" and wait_for(lambda: llm_tokens(first) > spent, 60)


def test_cache_off_and_a_mode_outside_the_three(first: TritonServer) -> None:
    question = f"Name a planet ({os.getpid()})."
    ask(first, question)
    assert ask(first, question, {"cache": "off"}).decision["cache"] == "skipped: off"
    with pytest.raises(InferenceServerException, match="options.cache"):
        ask(first, question, {"cache": "sometimes"})


def test_two_routers_on_one_redis_share_hits(first: TritonServer, shared_redis: list[RedisServer]) -> None:
    second = _router_on(shared_redis[-1], [])  # no LLM: a hit must not need one
    try:
        question = f"What is the capital of Japan ({os.getpid()})?"
        answer = ask(first, question)
        again = ask(second, question)
        assert again.decision["cache"] == "hit" and again.text == answer.text
        states = model_states(RouterClient(second.http_url, headers=second.admin_headers))
        assert states.get(LLM) != "READY"  # answered without loading a model, seen from Triton's index
    finally:
        stop_server(second)


def test_cache_stats_and_clear_behind_the_admin_key(first: TritonServer, shared_redis: list[RedisServer]) -> None:
    client = RouterClient(first.http_url)
    report = client.deep_health()["cache"]
    assert report["backend"] == "redis" and report["healthy"] is True and report["bytes"] > 0
    with pytest.raises(InferenceServerException, match="options.admin_key"):
        client.cache("clear")
    assert ours(shared_redis[-1])
    assert client.cache("stats", ADMIN_KEY)["hits"] >= 1
    assert client.cache("clear", ADMIN_KEY)["cleared"] > 0 and ours(shared_redis[-1]) == []
    client._client.close()


def test_redis_killed_mid_run_requests_keep_being_answered(first: TritonServer, shared_redis: list[RedisServer],
                                                          tmp_path: Path) -> None:
    question = f"Name a fruit ({os.getpid()})."
    ask(first, question)
    errors = metric(first, "tmr_cache_errors_total", absent=0.0)
    shared_redis[-1].stop(signal.SIGKILL)
    answer = ask(first, question)  # was held; Redis is gone: answered by the model instead
    assert answer.text and answer.decision["cache"].startswith("skipped: cache unavailable")
    time.sleep(1.0)  # the router ships its metric ops every 250 ms
    assert metric(first, "tmr_cache_errors_total") > errors
    report = RouterClient(first.http_url).deep_health()["cache"]
    assert report["healthy"] is False and report["last_error"]
    # Redis back on its port (empty): the router takes it up again by itself.
    shared_redis.append(RedisServer(tmp_path, shared_redis[-1].port))
    assert wait_for(lambda: ask(first, question).decision["cache"] in ("miss", "hit"), 30, poll_s=1)
    assert ask(first, question).decision["cache"] == "hit"
