"""The response cache on a real redis-server (Debian's, started here on a free port), seen from a plain
Redis client beside it; and, once the router takes options.cache, through the router itself."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
import redis

from client import RouterClient
from client.api import InferenceServerException
from model_router.cache import CachedAnswer, ResponseCache, key_of, scope_of
from model_router.cache import cache as cache_module
from model_router.cache.keys import KEY_PREFIX
from model_router.request import RouteOptions

from ..unit.test_cache_keys import BASE, DIFFERENT, variant
from .observe import is_alive, wait_for

pytestmark = pytest.mark.integration
ANSWER = CachedAnswer(text="Paris.", pieces=["Par", "is."], audio=b"RIFF\x00\x01fake wav", visemes=[{"t": 0, "v": "p"}],
                      tool_calls=[{"name": "weather", "arguments": "{}"}], finish_reason="stop",
                      usage={"completion_tokens": 3}, decision={"model": "smollm2_135m_instruct"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server of our own: no persistence, no config file, stopped (and reaped) by stop()."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (scripts/setup.sh installs Debian's)")
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(workdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port, socket_timeout=2)
        assert wait_for(self._answers, 20), f"redis-server on port {self.port} does not answer"

    def _answers(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.ConnectionError:
            assert self.proc.poll() is None, f"redis-server exited with {self.proc.returncode}"
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=20)
        self.client.close()
        assert not is_alive(self.proc.pid)


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


# Through the router: a repeated greedy request is a hit with the same answer; a sampled one never is.
GREEDY = {"sampling_parameters": {"max_tokens": 8, "temperature": 0}, "cache": "exact"}


@pytest.fixture
def router_with_cache(request: pytest.FixtureRequest):
    """The shared server's router, asked for only once the router takes options.cache: a static `router`
    argument would start tritonserver for this module even while these tests skip."""
    if "cache" not in RouteOptions.model_fields:
        pytest.skip("the router does not take options.cache yet")
    return request.getfixturevalue("router")


def test_repeated_greedy_request_is_a_hit_with_the_same_answer(router_with_cache) -> None:
    client = RouterClient(router_with_cache.http_url)
    question = f"Name one colour of the rainbow ({os.getpid()})."
    first = client.route(question, GREEDY)
    assert first.decision["cache"] in ("miss", "hit")
    second = client.route(question.upper(), GREEDY)
    assert second.decision["cache"] == "hit" and second.text == first.text


def test_sampled_request_is_never_cached(router_with_cache) -> None:
    client = RouterClient(router_with_cache.http_url)
    sampled = {"sampling_parameters": {"max_tokens": 8, "temperature": 0.9}, "cache": "exact"}
    for _ in range(2):
        assert client.route(f"Say a random word ({os.getpid()}).", sampled).decision["cache"].startswith("skipped")


def test_cache_mode_outside_the_three_is_refused_by_name(router_with_cache) -> None:
    with pytest.raises(InferenceServerException, match="options.cache"):
        RouterClient(router_with_cache.http_url).route("hi", {"cache": "sometimes"})
