"""The decision log: served answers and clients' scores of them, in a JSONL file and in a real
redis-server (started here on a free port), read back from outside; the router logging what it serves
(cache hits too); options.feedback and POST /v1/feedback refusing what they must."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from model_router.contract.control import Peek
from model_router.contract.errors import ErrorKind, WireError
from model_router.contract.request import parse_options
from model_router.contract.router import RouterAnswer, RouterInputs
from model_router.errors import InputError, ServingError
from model_router.registry import load_registry
from model_router.routing import decision_log
from model_router.routing.decision_log import (DECISION_TTL_S, ID_KEY, LIST_KEY, DecisionLog, JsonlStore, RedisStore,
                                               read)
from model_router.settings import RouterSettings
from openai_front.app import Settings, create_app
from openai_front.errors import from_wire

from ..integration.services import RedisServer
from .test_router import PRIMARY, build, req
from .test_router_cache import Harness

DECISION_KEYS = {"type", "id", "time", "model", "use_case", "language", "complexity", "form", "prefer", "cache",
                 "tenant"}
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def decision(n: int = 1, **values) -> dict:
    """A decision as the router returns it (the fields the log reads, and some it does not)."""
    return {"id": f"{n:032x}", "model": PRIMARY, "use_case": "agent", "language": "en", "complexity": "low",
            "cache": "miss", "reason": "classified agent", "candidates": [], **values}


def records(source) -> list[dict]:
    return list(read(source))


# -- the JSONL file ---------------------------------------------------------------------------------
def test_decisions_and_outcomes_are_lines_of_json_read_back_in_order(tmp_path: Path) -> None:
    path = tmp_path / "log" / "decisions.jsonl"  # its folder is made on the first line
    log = DecisionLog(JsonlStore(path), clock=lambda: 1234.5)
    log.decided(decision(1), parse_options({"prefer": "cost"}))
    assert log.outcome(f"{1:032x}", 0.8) == {"decision_id": f"{1:032x}", "score": 0.8, "recorded": True}
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line) for line in lines)
    first, second = records(path)
    assert set(first) == DECISION_KEYS
    assert first == {"type": "decision", "id": f"{1:032x}", "time": 1234.5, "model": PRIMARY, "use_case": "agent",
                     "language": "en", "complexity": "low", "form": "text", "prefer": "cost", "cache": "miss",
                     "tenant": None}
    assert second == {"type": "outcome", "id": f"{1:032x}", "time": 1234.5, "score": 0.8}


@pytest.mark.parametrize(("options", "form"), [
    ({}, "text"),
    ({"tools": [WEATHER]}, "tools"),
    ({"tools": [WEATHER], "tool_choice": "none"}, "text"),
    ({"response_format": {"type": "json_object"}}, "json"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}}, "json"),
    ({"response_format": {"type": "text"}}, "text"),
])
def test_the_form_is_what_the_client_asked_the_answer_to_be(tmp_path: Path, options: dict, form: str) -> None:
    log = DecisionLog(JsonlStore(tmp_path / "d.jsonl"))
    log.decided(decision(), parse_options(options))
    assert records(tmp_path / "d.jsonl")[0]["form"] == form


def test_an_id_is_known_after_the_file_is_opened_again(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    DecisionLog(JsonlStore(path)).decided(decision(7), parse_options({}))
    with path.open("a") as f:
        f.write('{"type": "decision", "id": "00')  # a line cut short by a crash: skipped
    again = DecisionLog(JsonlStore(path))  # a restarted router
    assert again.outcome(f"{7:032x}", 1)["recorded"] is True
    assert [r["type"] for r in records(path)] == ["decision", "outcome"]


def test_unknown_ids_are_refused_naming_the_field(tmp_path: Path) -> None:
    log = DecisionLog(JsonlStore(tmp_path / "d.jsonl"))
    log.decided(decision(1), parse_options({}))
    for unknown in (f"{2:032x}", "not-an-id", ""):
        with pytest.raises(InputError) as info:
            log.outcome(unknown, 0.5)
        assert info.value.field == "feedback.decision_id" and "unknown decision id" in str(info.value)
    assert [r["type"] for r in records(tmp_path / "d.jsonl")] == ["decision"]  # nothing appended


@pytest.mark.parametrize("score", [1.5, -0.1, math.nan, math.inf, True, "0.5", None])
def test_a_score_outside_0_to_1_is_refused_naming_the_field(tmp_path: Path, score) -> None:
    log = DecisionLog(JsonlStore(tmp_path / "d.jsonl"))
    log.decided(decision(1), parse_options({}))
    with pytest.raises(InputError) as info:
        log.outcome(f"{1:032x}", score)
    assert info.value.field == "feedback.score" and "must be between 0 and 1" in str(info.value)
    assert len(records(tmp_path / "d.jsonl")) == 1


def test_the_known_ids_are_bounded_to_the_latest(tmp_path: Path) -> None:
    log = DecisionLog(JsonlStore(tmp_path / "d.jsonl", keep=2))
    for n in (1, 2, 3):
        log.decided(decision(n), parse_options({}))
    with pytest.raises(InputError):
        log.outcome(f"{1:032x}", 0.5)
    assert log.outcome(f"{3:032x}", 0.5)["recorded"]


def test_a_log_that_is_off_takes_no_feedback() -> None:
    log = DecisionLog.open("off")
    log.decided(decision(), parse_options({}))  # nothing to do, nothing raised
    with pytest.raises(ServingError, match="decision log is off"):
        log.outcome(f"{1:032x}", 0.5)


# -- a failing log ----------------------------------------------------------------------------------
def test_a_failing_file_never_fails_the_caller_and_is_said_once(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "d.jsonl"
    log = DecisionLog(JsonlStore(path))
    log.decided(decision(1), parse_options({}))
    path.unlink()
    path.mkdir()  # the path is a folder now: every append fails
    with caplog.at_level(logging.WARNING, "model_router.decision_log"):
        for n in range(2, 5):
            log.decided(decision(n), parse_options({}))
    assert len([r for r in caplog.records if "decision log" in r.getMessage()]) == 1
    with pytest.raises(ServingError, match="cannot keep"):  # feedback says it was not kept
        log.outcome(f"{1:032x}", 0.5)


def test_a_redis_that_is_gone_never_fails_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    from launcher import free_port

    log = DecisionLog.open(f"redis://127.0.0.1:{free_port()}/0")
    with caplog.at_level(logging.WARNING, "model_router.decision_log"):
        log.decided(decision(), parse_options({}))
    assert "failed" in caplog.text
    with pytest.raises(ServingError):
        log.outcome(f"{1:032x}", 0.5)


# -- Redis --------------------------------------------------------------------------------------------
@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def test_redis_holds_the_same_records_and_any_replica_knows_the_id(redis_server: RedisServer) -> None:
    one, other = DecisionLog.open(redis_server.url), DecisionLog.open(redis_server.url)  # two replicas
    assert isinstance(one.store, RedisStore)
    one.decided(decision(5), parse_options({"tools": [WEATHER]}))
    assert 0 < redis_server.client.ttl(ID_KEY + f"{5:032x}") <= DECISION_TTL_S
    assert other.outcome(f"{5:032x}", 0.25)["recorded"]
    with pytest.raises(InputError) as info:
        other.outcome(f"{6:032x}", 0.25)
    assert info.value.field == "feedback.decision_id"
    raw = [json.loads(line) for line in redis_server.client.lrange(LIST_KEY, 0, -1)]
    assert raw == records(redis_server.url)
    assert [(r["type"], r["id"]) for r in raw] == [("decision", f"{5:032x}"), ("outcome", f"{5:032x}")]
    assert set(raw[0]) == DECISION_KEYS and raw[0]["form"] == "tools" and raw[1]["score"] == 0.25


def test_redis_records_are_read_back_past_one_batch(redis_server: RedisServer, monkeypatch) -> None:
    log = DecisionLog.open(redis_server.url)
    for n in range(5):
        log.decided(decision(n), parse_options({}))
    assert [r["id"] for r in decision_log._redis_records(redis_server.url, batch=2)] == \
        [f"{n:032x}" for n in range(5)]


# -- the router logs what it serves -----------------------------------------------------------------
def test_the_router_logs_each_answer_it_serves_under_its_decision_id(tmp_path: Path) -> None:
    router, _, _ = build()
    router.decisions = DecisionLog(JsonlStore(tmp_path / "d.jsonl"))
    first, second = (list(router.route(req()))[-1].decision for _ in range(2))
    assert len(first["id"]) == 32 and first["id"] != second["id"]
    logged = records(tmp_path / "d.jsonl")
    assert [(r["id"], r["model"], r["complexity"]) for r in logged] == \
        [(first["id"], PRIMARY, "low"), (second["id"], PRIMARY, "low")]


def test_a_request_that_fails_logs_nothing(tmp_path: Path) -> None:
    router, _, _ = build(broken=set(load_registry().models))
    router.decisions = DecisionLog(JsonlStore(tmp_path / "d.jsonl"))
    with pytest.raises(ServingError):
        list(router.route(req()))
    assert not (tmp_path / "d.jsonl").exists()


def test_a_cache_hit_is_served_and_logged_under_an_id_of_its_own(tmp_path: Path) -> None:
    h = Harness()
    h.router.decisions = DecisionLog(JsonlStore(tmp_path / "d.jsonl"))
    first, again = h.ask()[-1], h.ask()[-1]
    assert again.decision["cache"] == "hit" and again.decision["id"] != first.decision["id"]
    logged = records(tmp_path / "d.jsonl")
    assert [(r["id"], r["cache"]) for r in logged] == [(first.decision["id"], "miss"), (again.decision["id"], "hit")]


# -- the option and its settings ----------------------------------------------------------------------
@pytest.mark.parametrize(("feedback", "field"), [
    ({"decision_id": "a" * 32, "score": 1.5}, "options.feedback.score"),
    ({"decision_id": "a" * 32, "score": float("nan")}, "options.feedback.score"),
    ({"decision_id": "a" * 32}, "options.feedback.score"),
    ({"score": 0.5}, "options.feedback.decision_id"),
    ({"decision_id": "a" * 32, "score": 0.5, "extra": 1}, "options.feedback.extra"),
])
def test_the_feedback_option_is_checked_naming_its_field(feedback: dict, field: str) -> None:
    with pytest.raises(InputError) as info:
        parse_options({"feedback": feedback})
    assert info.value.field == field


def test_feedback_is_answered_ahead_of_the_queue() -> None:
    inputs = RouterInputs("", {"feedback": {"decision_id": "a" * 32, "score": 1}}).encode()
    assert Peek.decode(inputs.get).ahead
    assert not Peek.decode(RouterInputs("hi", {}).encode().get).ahead


@pytest.mark.parametrize(("value", "ok"), [("off", True), ("/var/log/tmr.jsonl", True), ("redis://h:6379/0", True),
                                           ("redis://h/0", False), ("http://h/x", False)])
def test_the_setting_takes_off_a_path_or_a_redis_url(value: str, ok: bool) -> None:
    if ok:
        assert RouterSettings.read({}, {"TMR_DECISION_LOG": value}).decision_log == value
    else:
        with pytest.raises(Exception, match="TMR_DECISION_LOG"):
            RouterSettings.read({}, {"TMR_DECISION_LOG": value})
    assert RouterSettings.read({}, {}).decision_log == "off"


# -- POST /v1/feedback, with the router's answers played by a stand-in ------------------------------
class _Router:
    """The router as the front sees it: feedback on KNOWN is recorded, any other id refused."""

    KNOWN = "b" * 32

    def __init__(self) -> None:
        self.calls = []

    async def close(self) -> None:
        pass

    async def events(self, call):
        self.calls.append(call)
        feedback = call.request.options.feedback
        if feedback.decision_id != self.KNOWN:
            raise from_wire(WireError(ErrorKind.BAD_INPUT, "options.feedback.decision_id: unknown decision id",
                                      "options.feedback.decision_id"), call.openai_field)
        yield RouterAnswer("recorded", decision={"decision_id": feedback.decision_id, "score": feedback.score,
                                                 "recorded": True})


@pytest.fixture
def front() -> Iterator[tuple[TestClient, _Router]]:
    with TestClient(create_app(Settings(api_key="k"))) as client:
        client.app.state.router = router = _Router()
        client.headers["Authorization"] = "Bearer k"
        yield client, router


def test_the_route_records_a_score_of_a_known_decision(front) -> None:
    client, router = front
    got = client.post("/v1/feedback", json={"decision_id": _Router.KNOWN, "score": 1})
    assert got.status_code == 200 and got.json() == {"decision_id": _Router.KNOWN, "score": 1.0, "recorded": True}
    assert router.calls[0].request.options.feedback.score == 1.0


@pytest.mark.parametrize(("body", "param"), [
    ({"decision_id": "c" * 32, "score": 0.5}, "decision_id"),  # the router's refusal
    ({"decision_id": _Router.KNOWN, "score": 1.5}, "score"),
    ({"decision_id": _Router.KNOWN, "score": "high"}, "score"),
    ({"score": 0.5}, "decision_id"),
    ({"decision_id": _Router.KNOWN, "score": 0.5, "user": "x"}, "user"),
])
def test_the_route_refuses_in_openais_shape_naming_the_clients_field(front, body: dict, param: str) -> None:
    client, _ = front
    got = client.post("/v1/feedback", json=body)
    assert got.status_code == 400, got.text
    error = got.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"].startswith(param)


def test_the_route_is_behind_the_api_key(front) -> None:
    client, router = front
    got = client.post("/v1/feedback", json={"decision_id": _Router.KNOWN, "score": 1}, headers={"Authorization": ""})
    assert got.status_code == 401 and not router.calls
