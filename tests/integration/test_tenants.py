"""Tenants on real parts: a tritonserver with the router, a real redis-server, and two OpenAI fronts on it
(two replicas), keys made through the admin API. Observed from outside: HTTP statuses, headers and bodies,
the admin API's usage, the fronts' /metrics. A rate is exact across replicas, a budget stops a key at the
engine's counts, a revocation reaches both replicas at once, a key kept to SmolLM2 is routed only there,
and with Redis stopped no revoked key gets in while requests are still answered."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest

from launcher import FrontProcess, TritonServer, free_port
from openai_front import ADMIN_KEY_ENV, KEYS_ENV
from openai_front.tenants.service import FRESH_EVERY_S

from .conftest import LLM
from .services import KEY, RedisServer, stop_front

pytestmark = pytest.mark.integration
ADMIN = "admin-key-37"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
SHORT = {"max_tokens": 8, "temperature": 0}


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fronts(router: TritonServer, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list]:
    tmp, started = tmp_path_factory.mktemp("tenants"), []
    try:
        for i in range(2):
            started.append(FrontProcess(router.grpc_url, port=free_port(), host="127.0.0.1", api_key=KEY,
                                        log_file=tmp / f"front{i}.log",
                                        env={KEYS_ENV: redis.url, ADMIN_KEY_ENV: ADMIN}).start())
        yield started
    finally:
        for front in started:
            stop_front(front)


def call(front: FrontProcess, method: str, path: str, body: Any = None, key: str = KEY) -> tuple[int, dict, Any]:
    """One HTTP request: (status, headers by lower-case name, JSON body or text)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{front.url}{path}", data=data, method=method,
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            status, headers, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, exc.headers, exc.read()
    headers = {name.lower(): value for name, value in headers.items()}
    try:
        return status, headers, json.loads(raw)
    except ValueError:
        return status, headers, raw.decode()


def create(front: FrontProcess, **spec: Any) -> str:
    status, _, body = call(front, "POST", "/admin/keys", spec, ADMIN)
    assert status == 201, body
    return body["key"]


def chat(front: FrontProcess, key: str, model: str = "auto", messages: list = FRANCE) -> tuple[int, dict, Any]:
    return call(front, "POST", "/v1/chat/completions", {"model": model, "messages": messages, **SHORT}, key)


def test_a_key_at_20_rpm_gets_exactly_20_of_50_concurrent_requests_across_both_replicas(fronts: list) -> None:
    key = create(fronts[0], name="burst", rpm=20)
    ask = {"model": "auto", "input": "a river in spring"}  # embeddings: the router's cheapest answer
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda i: call(fronts[i % 2], "POST", "/v1/embeddings", ask, key), range(50)))
    statuses = [status for status, _, _ in results]
    assert statuses.count(200) == 20 and statuses.count(429) == 30, statuses
    refused = [(headers, body) for status, headers, body in results if status == 429]
    assert all(int(h["retry-after"]) >= 1 and b["error"]["code"] == "rate_limit_exceeded" for h, b in refused)
    # Each replica was asked 25 times: counted apart, they would have let 40 through.


def test_a_token_budget_stops_a_key_once_the_engines_tokens_reach_it(fronts: list) -> None:
    key = create(fronts[0], name="budget", budget_tokens=150, period="day", models=[LLM])
    spent = before = 0
    for i in range(40):
        status, _, body = chat(fronts[i % 2], key)
        if status == 429:
            assert body["error"]["code"] == "insufficient_quota" and body["error"]["param"] == "budget_tokens"
            break
        assert status == 200, body
        before, spent = spent, spent + body["usage"]["total_tokens"]
    else:
        pytest.fail(f"never refused after {spent} tokens")
    assert before < 150 <= spent  # admitted while under the budget, refused once the engine's counts reach it
    _, _, usage = call(fronts[1], "GET", "/admin/usage?key=budget", key=ADMIN)
    assert sum(r["prompt_tokens"] + r["completion_tokens"] for r in usage["data"]) == spent


def test_a_revoked_key_is_refused_by_both_replicas_at_once(fronts: list) -> None:
    key = create(fronts[0], name="revokable")
    assert [call(f, "GET", "/v1/models", key=key)[0] for f in fronts] == [200, 200]
    status, _, body = call(fronts[0], "DELETE", "/admin/keys/revokable", key=ADMIN)
    assert status == 200 and body["revoked"] is True
    for front in fronts:
        status, _, body = call(front, "GET", "/v1/models", key=key)
        assert status == 401 and "revoked" in body["error"]["message"]


def test_a_key_kept_to_smollm2_is_refused_another_model_and_routed_only_to_it(fronts: list) -> None:
    key = create(fronts[0], name="small", models=[LLM])
    status, _, body = chat(fronts[1], key, model="qwen2_5_coder_1_5b_instruct")
    assert status == 403 and body["error"]["param"] == "model" and LLM in body["error"]["message"]
    hard = [{"role": "user", "content": "Prove that there are infinitely many prime numbers, step by step."}]
    status, _, body = chat(fronts[0], key, messages=hard)
    assert status == 200 and body["model"] == LLM and body["routing"]["tenant"] == "small"
    assert any("not allowed" in s["why"] for s in body["routing"]["skipped"])


def test_with_redis_stopped_no_revoked_key_gets_in_and_requests_are_answered(fronts: list, redis: RedisServer) -> None:
    steady, banned = create(fronts[0], name="steady", rpm=1000), create(fronts[0], name="banned")
    for front in fronts:  # each replica has seen both keys
        assert chat(front, steady)[0] == 200 and call(front, "GET", "/v1/models", key=banned)[0] == 200
    assert call(fronts[0], "DELETE", "/admin/keys/banned", key=ADMIN)[0] == 200
    assert call(fronts[0], "GET", "/v1/models", key=banned)[0] == 401
    # Replica 1 is not asked about the key again before Redis goes: it learns of the revocation from its
    # own reading of the store, once a second (FRESH_EVERY_S); ten seconds is a wide margin for a slow machine.
    time.sleep(10 * FRESH_EVERY_S)
    redis.stop()
    for front in fronts:
        status, _, body = chat(front, steady)
        assert status == 200 and body["choices"][0]["message"]["content"] is not None
        status, _, body = call(front, "GET", "/v1/models", key=banned)
        assert status == 401, body
        _, _, metrics = call(front, "GET", "/metrics", key=ADMIN)
        assert "tmr_front_limits_degraded 1.0" in metrics
