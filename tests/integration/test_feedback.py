"""Feedback on the real server (tritonserver, the router logging to a file of this test's, the OpenAI
front): an answer's decision id from its `routing`, POST /v1/feedback on it, and the log file read from
outside; the router's own option (RouterClient.feedback, `tmr feedback`); refusals, and serving on."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import openai
import pytest

from client import RouterClient
from client.api import RouterFailed
from client.cli import main as tmr
from launcher import FrontProcess, TritonServer

from .conftest import LLM, start_server, stop_server
from .services import KEY, start_front, stop_front

pytestmark = pytest.mark.integration
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
SHORT = {"max_tokens": 8, "temperature": 0}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TritonServer, FrontProcess, Path]]:
    tmp = tmp_path_factory.mktemp("feedback")
    log = tmp / "decisions.jsonl"
    server = start_server(["query_classifier", "router", LLM], env={"TMR_DECISION_LOG": str(log)})
    front = None
    try:
        front = start_front(server, tmp)
        yield server, front, log
    finally:
        try:
            if front is not None:
                stop_front(front)
        finally:
            stop_server(server)


def logged(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def feedback(front: FrontProcess, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"{front.url}/v1/feedback", json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_an_answer_scored_through_the_front_is_in_the_log(served) -> None:
    server, front, log = served
    sdk = openai.OpenAI(base_url=f"{front.url}/v1", api_key=KEY, max_retries=0, timeout=300)
    raw = sdk.chat.completions.with_raw_response.create(model="auto", messages=FRANCE, **SHORT)
    answer = raw.parse()
    decision_id = answer.routing["id"]
    # The id is in the body's routing and in the routing header alike.
    assert json.loads(raw.headers["x-tmr-routing"])["id"] == decision_id and len(decision_id) == 32
    status, body = feedback(front, {"decision_id": decision_id, "score": 0.8})
    assert (status, body) == (200, {"decision_id": decision_id, "score": 0.8, "recorded": True})
    records = logged(log)
    decided = [r for r in records if r["type"] == "decision" and r["id"] == decision_id]
    assert len(decided) == 1 and decided[0]["model"] == answer.model == LLM
    assert decided[0]["form"] == "text" and decided[0]["prefer"] == "balanced" and decided[0]["cache"]
    assert [r["score"] for r in records if r["type"] == "outcome" and r["id"] == decision_id] == [0.8]


def test_refusals_name_the_clients_field_and_the_server_serves_on(served) -> None:
    server, front, log = served
    before = len(logged(log)) if log.exists() else 0
    status, body = feedback(front, {"decision_id": "0" * 32, "score": 0.5})
    assert status == 400 and body["error"]["param"] == "decision_id" and "unknown" in body["error"]["message"]
    status, body = feedback(front, {"decision_id": "0" * 32, "score": 1.5})
    assert status == 400 and body["error"]["param"] == "score" and "between 0 and 1" in body["error"]["message"]
    assert (len(logged(log)) if log.exists() else 0) == before  # nothing was appended
    # It serves on, and a streamed answer carries its id too, in the last chunk's routing.
    sdk = openai.OpenAI(base_url=f"{front.url}/v1", api_key=KEY, max_retries=0, timeout=300)
    chunks = list(sdk.chat.completions.create(model="auto", messages=FRANCE, stream=True, **SHORT))
    ids = [c.routing["id"] for c in chunks if getattr(c, "routing", None)]
    assert len(ids) == 1 and feedback(front, {"decision_id": ids[0], "score": 0})[0] == 200


def test_the_routers_own_option_and_tmr_feedback(served, capsys: pytest.CaptureFixture) -> None:
    server, _, log = served
    client = RouterClient(server.grpc_url, "grpc")
    try:
        decision = client.route("What is the capital of France?", {"sampling_parameters": SHORT}).decision
        assert client.feedback(decision["id"], 1) == {"decision_id": decision["id"], "score": 1.0, "recorded": True}
        with pytest.raises(RouterFailed) as info:
            client.feedback("f" * 32, 1)
        assert info.value.wire.field == "options.feedback.decision_id"
    finally:
        client.close()
    assert tmr(["--url", server.grpc_url, "feedback", decision["id"], "0.25"]) == 0
    assert decision["id"] in capsys.readouterr().out
    assert [r["score"] for r in logged(log) if r["type"] == "outcome" and r["id"] == decision["id"]] == [1.0, 0.25]
