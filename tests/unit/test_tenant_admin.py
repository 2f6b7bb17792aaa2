"""The admin API (/admin, behind the admin key), a key's own usage (/v1/tmr/usage) and `tmr keys` / `tmr usage`,
on the front as `create_app` builds it, with its real tenant store (a SQLite file, or a real redis-server)."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from client.cli import main as tmr
from launcher import free_port
from openai_front.app import Settings, create_app
from openai_front.tenants.keys import KeySpec, hash_key

from ..integration.services import RedisServer

ADMIN = "admin-secret"
MODEL, OTHER = "smollm2_135m_instruct", "qwen2_5_coder_0_5b_instruct"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def front(tmp_path: Path) -> Iterator[TestClient]:
    """The front with its tenant store in a SQLite file and an admin key."""
    with TestClient(create_app(Settings(keys=str(tmp_path / "tenants.db"), admin_key=ADMIN))) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def charge(client: TestClient, name: str, when: datetime, prompt: int, completion: int, model: str = MODEL,
           cached: bool = False) -> None:
    """An answer charged to the key `name`, as the front charges it after answering."""
    tenants = client.app.state.tenants
    record = next(k for k in tenants.keys.list() if k.name == name)
    tenants.counters.charge("its-hash", record, model, prompt, completion, cached, False, when.timestamp())


def error(resp) -> dict:
    return resp.json()["error"]


def test_keys_are_created_listed_changed_and_revoked(front: TestClient) -> None:
    made = front.post("/admin/keys", headers=AS_ADMIN, json={"name": "team-a", "models": [MODEL], "rpm": 5,
                                                             "budget_tokens": 1000, "period": "day"})
    assert made.status_code == 201
    key = made.json()["key"]
    assert key.startswith("tmr-") and made.json()["models"] == [MODEL] and made.json()["revoked"] is False
    assert front.get("/v1/tmr/usage", headers=bearer(key)).status_code == 200  # the key works

    listed = front.get("/admin/keys", headers=AS_ADMIN)
    assert [k["name"] for k in listed.json()["data"]] == ["team-a"]
    assert key not in listed.text and hash_key(key) not in listed.text and '"key"' not in listed.text

    changed = front.patch("/admin/keys/team-a", headers=AS_ADMIN, json={"rpm": 9})
    assert changed.status_code == 200
    assert (changed.json()["rpm"], changed.json()["budget_tokens"], changed.json()["models"]) == (9, 1000, [MODEL])
    assert front.get("/admin/keys", headers=AS_ADMIN).json()["data"][0]["rpm"] == 9

    revoked = front.delete("/admin/keys/team-a", headers=AS_ADMIN)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    refused = front.get("/v1/tmr/usage", headers=bearer(key))
    assert refused.status_code == 401 and "revoked" in error(refused)["message"]
    assert front.get("/admin/keys", headers=AS_ADMIN).json()["data"][0]["revoked"] is True


def test_the_admin_api_takes_only_the_admin_key(front: TestClient) -> None:
    key = front.post("/admin/keys", headers=AS_ADMIN, json={"name": "team-a"}).json()["key"]
    for headers in ({}, bearer("not-it"), bearer(key), {"x-api-key": ADMIN}):
        for resp in (front.get("/admin/keys", headers=headers), front.delete("/admin/keys/team-a", headers=headers),
                     front.post("/admin/keys", headers=headers, json={"name": "team-b"})):
            assert resp.status_code == 401, headers
            assert error(resp)["code"] == "invalid_api_key"
    assert [k["revoked"] for k in front.get("/admin/keys", headers=AS_ADMIN).json()["data"]] == [False]


@pytest.mark.parametrize("settings", [Settings(), Settings(api_key="k")], ids=["open", "api-key"])
def test_the_admin_api_is_off_without_a_key_store(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        resp = client.get("/admin/keys", headers=AS_ADMIN)
        assert resp.status_code == 404
        assert "--keys" in error(resp)["message"] and "--admin-key" in error(resp)["message"]
        # The server's single key is no tenant's: it has no usage of its own to show.
        assert client.get("/v1/tmr/usage", headers=bearer("k")).status_code == 404


def test_the_admin_api_is_off_without_an_admin_key(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(keys=str(tmp_path / "t.db")))) as client:
        for headers in (AS_ADMIN, bearer(""), {}):
            resp = client.post("/admin/keys", headers=headers, json={"name": "team-a"})
            assert resp.status_code == 404 and "--admin-key" in error(resp)["message"]


@pytest.mark.parametrize("body, param, says", [
    ({"name": "b", "models": [MODEL, "gpt-9"]}, "models[1]", MODEL),  # the available ones are listed
    ({"name": "b", "use_cases": ["agent", "poetry"]}, "use_cases[1]", "agent"),
    ({"name": "b", "rpm": 0}, "rpm", "0"),
    ({"name": "b", "period": "week"}, "period", "month"),
    ({"name": "b", "expires_at": "soon"}, "expires_at", "soon"),
    ({"name": "b", "budget": 5}, "budget", "budget_tokens"),
    ({"name": "no spaces"}, "name", "no spaces"),
    ({"models": [MODEL]}, "name", "required"),
])
def test_a_bad_key_names_its_field(front: TestClient, body: dict, param: str, says: str) -> None:
    resp = front.post("/admin/keys", headers=AS_ADMIN, json=body)
    assert resp.status_code == 400, resp.text
    assert error(resp)["param"] == param and error(resp)["message"].startswith(f"{param}: ")
    assert says in error(resp)["message"]
    assert front.get("/admin/keys", headers=AS_ADMIN).json()["data"] == []


def test_a_name_is_never_reused_and_changes_need_a_known_key_and_known_models(front: TestClient) -> None:
    assert front.post("/admin/keys", headers=AS_ADMIN, json={"name": "team-a"}).status_code == 201
    front.delete("/admin/keys/team-a", headers=AS_ADMIN)
    again = front.post("/admin/keys", headers=AS_ADMIN, json={"name": "team-a"})
    assert again.status_code == 409 and error(again)["param"] == "name" and "team-a" in error(again)["message"]

    unknown = front.patch("/admin/keys/team-z", headers=AS_ADMIN, json={"rpm": 3})
    assert unknown.status_code == 404 and "team-z" in error(unknown)["message"]
    assert front.delete("/admin/keys/team-z", headers=AS_ADMIN).status_code == 404

    bad_model = front.patch("/admin/keys/team-a", headers=AS_ADMIN, json={"models": ["gpt-9"]})
    assert bad_model.status_code == 400 and error(bad_model)["param"] == "models[0]"
    renamed = front.patch("/admin/keys/team-a", headers=AS_ADMIN, json={"name": "team-b"})
    assert renamed.status_code == 400 and error(renamed)["param"] == "name"
    assert [k["name"] for k in front.get("/admin/keys", headers=AS_ADMIN).json()["data"]] == ["team-a"]


def test_usage_by_key_model_hour_and_day(front: TestClient) -> None:
    for name in ("team-a", "team-b"):
        front.post("/admin/keys", headers=AS_ADMIN, json={"name": name})
    day = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    charge(front, "team-a", day + timedelta(hours=10, minutes=5), 10, 20)
    charge(front, "team-a", day + timedelta(hours=10, minutes=50), 1, 2)
    charge(front, "team-a", day + timedelta(hours=11), 100, 200, cached=True)  # no tokens: a cache hit
    charge(front, "team-a", day + timedelta(hours=12), 5, 5, model=OTHER)
    charge(front, "team-b", day + timedelta(hours=10), 7, 7)
    window = {"since": day.isoformat(), "until": (day + timedelta(days=1)).isoformat()}

    hourly = front.get("/admin/usage", headers=AS_ADMIN, params={**window, "key": "team-a"}).json()["data"]
    assert [(r["start"][11:16], r["model"], r["requests"], r["prompt_tokens"], r["completion_tokens"], r["cache_hits"])
            for r in hourly] == [("10:00", MODEL, 2, 11, 22, 0), ("11:00", MODEL, 1, 0, 0, 1), ("12:00", OTHER, 1, 5, 5, 0)]

    daily = front.get("/admin/usage", headers=AS_ADMIN, params={**window, "group": "day"}).json()["data"]
    assert [(r["name"], r["model"], r["start"][:10], r["requests"], r["prompt_tokens"]) for r in daily] == [
        ("team-a", OTHER, day.date().isoformat(), 1, 5), ("team-a", MODEL, day.date().isoformat(), 3, 11),
        ("team-b", MODEL, day.date().isoformat(), 1, 7)]

    recent = front.get("/admin/usage", headers=AS_ADMIN).json()["data"]  # the last 24 h by default
    assert recent == []


@pytest.mark.parametrize("query, status, param", [
    ({"key": "team-z"}, 404, "key"), ({"since": "yesterday"}, 400, "since"), ({"group": "week"}, 400, "group"),
    ({"since": "2025-06-02", "until": "2025-06-01"}, 400, "since"), ({"keys": "team-a"}, 400, "keys"),
])
def test_a_bad_usage_query_names_its_field(front: TestClient, query: dict, status: int, param: str) -> None:
    resp = front.get("/admin/usage", headers=AS_ADMIN, params=query)
    assert resp.status_code == status and error(resp)["param"] == param, resp.text


def test_a_key_reads_its_own_usage_limits_and_budget_left(front: TestClient) -> None:
    key = front.post("/admin/keys", headers=AS_ADMIN, json={"name": "team-a", "budget_tokens": 1000,
                                                            "period": "day", "rpm": 30}).json()["key"]
    other = front.post("/admin/keys", headers=AS_ADMIN, json={"name": "team-b"}).json()["key"]
    now = datetime.now(timezone.utc)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    charge(front, "team-a", now, 100, 50)
    charge(front, "team-a", now, 100, 50, cached=True)
    charge(front, "team-a", midnight - timedelta(minutes=30), 300, 0)  # yesterday's: not this day's budget
    charge(front, "team-b", now, 9, 9)

    own = front.get("/v1/tmr/usage", headers=bearer(key))
    assert own.status_code == 200
    body = own.json()
    assert body["name"] == "team-a" and body["limits"]["rpm"] == 30 and body["limits"]["period"] == "day"
    assert body["budget"]["spent"] == 150 and body["budget"]["left"] == 850
    assert body["budget"]["resets_at"].startswith((midnight + timedelta(days=1)).date().isoformat())
    assert [(r["model"], r["requests"], r["prompt_tokens"], r["cache_hits"]) for r in body["data"]] == [
        (MODEL, 3, 400, 1)]  # the last 24 h, whatever the budget's period
    assert key not in own.text and hash_key(key) not in own.text

    theirs = front.get("/v1/tmr/usage", headers=bearer(other)).json()
    assert theirs["budget"] is None and [r["requests"] for r in theirs["data"]] == [1]
    assert front.get("/v1/tmr/usage").status_code == 401


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def test_a_store_that_cannot_be_reached_is_a_503_with_retry_after(redis_server: RedisServer) -> None:
    with TestClient(create_app(Settings(keys=redis_server.url, admin_key=ADMIN))) as client:
        assert client.post("/admin/keys", headers=AS_ADMIN, json={"name": "team-a"}).status_code == 201
        redis_server.stop()
        for resp in (client.post("/admin/keys", headers=AS_ADMIN, json={"name": "team-b"}),
                     client.get("/admin/keys", headers=AS_ADMIN), client.delete("/admin/keys/team-a", headers=AS_ADMIN),
                     client.get("/admin/usage", headers=AS_ADMIN)):
            assert resp.status_code == 503, resp.text
            assert int(resp.headers["Retry-After"]) > 0 and error(resp)["code"] == "unavailable"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, FastAPI]]:
    """The front over HTTP on a free port (as `tmr` reaches it), in a thread of this process."""
    app = create_app(Settings(keys=str(tmp_path / "tenants.db"), admin_key=ADMIN))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the front did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.config.port}", app
    server.should_exit = True
    thread.join(30)


def run_tmr(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    status = tmr(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_tmr_keys_and_usage_over_the_admin_api(served: tuple[str, FastAPI], capsys: pytest.CaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    url, app = served
    monkeypatch.setenv("TMR_ADMIN_KEY", ADMIN)
    status, out, _ = run_tmr(capsys, "keys", "create", "team-a", "--models", f"{MODEL},{OTHER}", "--rpm", "5",
                             "--budget-tokens", "900", "--period", "day", "--api-url", url)
    assert status == 0
    key = next(word for word in out.split() if word.startswith("tmr-"))
    record = app.state.tenants.keys.by_hash(hash_key(key))
    assert (record.name, record.models, record.rpm, record.budget_tokens) == ("team-a", [MODEL, OTHER], 5, 900)

    status, out, _ = run_tmr(capsys, "keys", "update", "team-a", "--tpm", "700", "--unset", "models",
                             "--api-url", url)
    assert status == 0
    record = app.state.tenants.keys.by_hash(hash_key(key))
    assert (record.models, record.tpm, record.rpm, record.period) == (None, 700, 5, "day")

    status, out, _ = run_tmr(capsys, "keys", "list", "--api-url", url)
    header, row = out.splitlines()
    assert header.split()[:2] == ["NAME", "STATE"] and row.split()[:2] == ["team-a", "active"]
    assert "900/day" in row and key not in out and hash_key(key) not in out

    _, other = app.state.tenants.keys.create(KeySpec(name="team-b"))
    app.state.tenants.counters.charge("h", other, MODEL, 99, 99, False, False, time.time())
    record = app.state.tenants.keys.by_hash(hash_key(key))
    app.state.tenants.counters.charge("h", record, MODEL, 12, 30, False, False, time.time())
    status, out, _ = run_tmr(capsys, "usage", "--key", "team-a", "--api-url", url)
    rows = [line.split() for line in out.splitlines()[1:]]
    assert status == 0 and [row[2:] for row in rows[:-1]] == [["team-a", MODEL, "1", "12", "30", "0", "0"]]
    assert rows[-1] == ["total", "1", "12", "30", "0", "0"]

    status, out, _ = run_tmr(capsys, "keys", "revoke", "team-a", "--api-url", url)
    assert status == 0 and "revoked" in out and app.state.tenants.keys.by_hash(hash_key(key)).revoked


def test_tmr_says_what_the_front_refused(served: tuple[str, FastAPI], capsys: pytest.CaptureFixture) -> None:
    url, _ = served
    status, _, err = run_tmr(capsys, "keys", "list", "--api-url", url, "--admin-key", "wrong")
    assert status == 2 and "401" in err and "admin key" in err
    run_tmr(capsys, "keys", "create", "team-a", "--api-url", url, "--admin-key", ADMIN)
    status, out, err = run_tmr(capsys, "keys", "create", "team-a", "--api-url", url, "--admin-key", ADMIN)
    assert status == 2 and "409" in err and "name" in err and "tmr-" not in out
    status, _, err = run_tmr(capsys, "keys", "update", "team-a", "--models", "gpt-9", "--api-url", url,
                             "--admin-key", ADMIN)
    assert status == 2 and "models[0]" in err
    status, _, err = run_tmr(capsys, "usage", "--api-url", f"http://127.0.0.1:{free_port()}", "--admin-key", ADMIN)
    assert status == 2 and "cannot reach" in err
