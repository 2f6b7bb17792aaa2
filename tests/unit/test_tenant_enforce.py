"""The front's tenants, with the router played by a stand-in that records what it was asked and answers
with the engine's counts: a key's authentication (401), its limits (429 with Retry-After, OpenAI's body),
its bounds passed to the router, its answers charged after (read back from the key store's usage), and
the server's own key and an open server as before."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from model_router.contract.router import RouterAnswer, RouterRequest, Usage
from openai_front.app import Settings, create_app
from openai_front.errors import ApiError
from openai_front.tenants import KeySpec

LLM = "smollm2_135m_instruct"
ASK = {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]}


class _Router:
    def __init__(self) -> None:
        self.calls: list[RouterRequest] = []
        self.cut = False  # the router stops answering after two pieces (its stub died, say)

    async def close(self) -> None:
        pass

    async def events(self, call):
        self.calls.append(call.request)
        feedback = call.request.options.feedback
        if feedback is not None:
            yield RouterAnswer("recorded", decision={"decision_id": feedback.decision_id, "score": feedback.score,
                                                     "recorded": True})
            return
        if call.request.stream:
            for i, word in enumerate(("Paris ", "is ", "the capital.")):
                if self.cut and i == 2:
                    raise ApiError(503, "the router stopped answering", "server_error")
                yield RouterAnswer(word, final=False)
        yield RouterAnswer("" if call.request.stream else "Paris is the capital.", True,
                           {"model": LLM, "use_case": "agent", "cache": "miss"}, finish_reason="stop",
                           usage=Usage(11, 7))


@pytest.fixture
def front(tmp_path: Path) -> Iterator[tuple[TestClient, _Router]]:
    settings = Settings(api_key="operator", keys=str(tmp_path / "tenants.sqlite"), admin_key="adm")
    with TestClient(create_app(settings)) as client:
        client.app.state.router._router = router = _Router()  # behind the metering
        yield client, router


def key_of(client: TestClient, **spec) -> str:
    plain, _ = client.app.state.tenants.keys.create(KeySpec.model_validate(spec))
    return plain


def usage_of(client: TestClient, name: str) -> list:
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    deadline = time.monotonic() + 30  # charged after the answer, apart from the request
    while time.monotonic() < deadline:
        rows = client.app.state.tenants.usage.report(name, since)
        if rows:
            return rows
        time.sleep(0.05)
    return []


def test_a_tenants_key_is_routed_within_its_bounds_and_charged_what_the_engine_counted(front) -> None:
    client, router = front
    key = key_of(client, name="app1", models=[LLM], use_cases=["agent"], prefer="balanced", rpm=5)
    got = client.post("/v1/chat/completions", json=ASK, headers={"Authorization": f"Bearer {key}"})
    assert got.status_code == 200, got.text
    opts = router.calls[0].options
    assert (opts.tenant, opts.allowed_models, opts.allowed_use_cases, opts.prefer_ceiling) == \
        ("app1", [LLM], ["agent"], "balanced")
    rows = usage_of(client, "app1")
    assert [(r.model, r.requests, r.prompt_tokens, r.completion_tokens) for r in rows] == [(LLM, 1, 11, 7)]
    assert 'tmr_front_tokens_total{key="app1",kind="completion",model="smollm2_135m_instruct"} 7.0' in \
        client.get("/metrics", headers={"Authorization": "Bearer adm"}).text


def test_unknown_revoked_and_expired_keys_are_401(front) -> None:
    client, _ = front
    revoked = key_of(client, name="gone")
    client.app.state.tenants.keys.revoke("gone")
    expired = key_of(client, name="old", expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    for key, words in (("tmr-nope", "incorrect"), (revoked, "revoked"), (expired, "expired")):
        got = client.post("/v1/chat/completions", json=ASK, headers={"Authorization": f"Bearer {key}"})
        assert got.status_code == 401 and words in got.json()["error"]["message"], got.text
    assert client.post("/v1/chat/completions", json=ASK).status_code == 401  # no key at all


def test_over_its_rate_a_key_gets_429_with_retry_after_in_openais_shape(front) -> None:
    client, router = front
    key = key_of(client, name="slow", rpm=2)
    codes = [client.post("/v1/chat/completions", json=ASK, headers={"Authorization": f"Bearer {key}"})
             for _ in range(4)]
    assert [c.status_code for c in codes] == [200, 200, 429, 429] and len(router.calls) == 2
    error = codes[2].json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["param"] == "rpm" and int(codes[2].headers["Retry-After"]) >= 1
    # Anthropic's route: the same key as x-api-key, the error in Anthropic's shape.
    got = client.post("/v1/messages", json={"model": "auto", "max_tokens": 8, "messages": ASK["messages"]},
                      headers={"x-api-key": key})
    assert got.status_code == 429 and got.json()["error"]["type"] == "rate_limit_error"


def test_a_spent_budget_is_429_insufficient_quota(front) -> None:
    client, _ = front
    key = key_of(client, name="thrifty", budget_tokens=20, period="day")
    first = client.post("/v1/chat/completions", json=ASK, headers={"Authorization": f"Bearer {key}"})
    assert first.status_code == 200
    usage_of(client, "thrifty")  # its 18 tokens are charged
    second = client.post("/v1/chat/completions", json=ASK, headers={"Authorization": f"Bearer {key}"})
    assert second.status_code == 200  # 18 < 20: admitted, and charged 18 more
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(r.prompt_tokens + r.completion_tokens
                                              for r in usage_of(client, "thrifty")) < 36:
        time.sleep(0.05)
    third = client.post("/v1/chat/completions", json=ASK, headers={"Authorization": f"Bearer {key}"})
    assert third.status_code == 429 and third.json()["error"]["code"] == "insufficient_quota"


def test_a_stream_is_charged_for_what_was_sent(front) -> None:
    client, _ = front
    key = key_of(client, name="streamer")
    got = client.post("/v1/chat/completions", json={**ASK, "stream": True}, headers={"Authorization": f"Bearer {key}"})
    assert got.status_code == 200 and "[DONE]" in got.text
    assert [(r.prompt_tokens, r.completion_tokens) for r in usage_of(client, "streamer")] == [(11, 7)]


def test_the_servers_own_key_has_no_limits_and_no_tenant(front) -> None:
    client, router = front
    got = client.post("/v1/chat/completions", json=ASK, headers={"Authorization": "Bearer operator"})
    assert got.status_code == 200 and router.calls[0].options.tenant is None


def test_an_open_server_asks_for_no_key() -> None:
    with TestClient(create_app(Settings())) as client:
        assert client.get("/v1/models").status_code == 200


def test_a_stream_cut_short_is_charged_for_the_pieces_sent(front) -> None:
    client, router = front
    router.cut = True
    key = key_of(client, name="cut")
    got = client.post("/v1/chat/completions", json={**ASK, "stream": True}, headers={"Authorization": f"Bearer {key}"})
    assert got.status_code == 200 and "stopped answering" in got.text  # the error event, after two pieces
    rows = usage_of(client, "cut")
    assert [(r.completion_tokens, r.errors) for r in rows] == [(2, 1)] and rows[0].prompt_tokens > 0


def test_keys_given_one_cache_namespace_share_it_and_others_keep_their_own(front) -> None:
    client, router = front
    shared, alone = key_of(client, name="team-a", cache_namespace="team"), key_of(client, name="team-b")
    for key in (shared, alone):
        assert client.post("/v1/chat/completions", json=ASK, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert [(c.options.tenant, c.options.cache_namespace) for c in router.calls] == [("team-a", "team"), ("team-b", None)]


def test_health_and_feedback_are_not_charged_and_feedback_counts_against_the_rate(front) -> None:
    client, _ = front
    key = key_of(client, name="scorer", rpm=1)
    headers = {"Authorization": f"Bearer {key}"}
    client.get("/v1/tmr/health", headers=headers)
    first = client.post("/v1/feedback", json={"decision_id": "a" * 32, "score": 1}, headers=headers)
    second = client.post("/v1/feedback", json={"decision_id": "a" * 32, "score": 1}, headers=headers)
    assert first.status_code != 429 and second.status_code == 429
    time.sleep(0.2)
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    assert client.app.state.tenants.usage.report("scorer", since) == []
