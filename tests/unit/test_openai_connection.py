"""How the front ends its gRPC stream to the router: an answer that is complete is never cancelled
(Triton 24.10 then holds the router until it stops; see openai_front.connection._close), one whose
client left is. The stream below stands in for tritonclient's: the rules are ours, not Triton's."""
from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator

import pytest

from model_router.contract.router import RouterAnswer, RouterRequest
from openai_front.connection import RouterConnection
from openai_front.errors import ApiError
from openai_front.translate import RouterCall


class _Response:
    def __init__(self, final: bool, names: list[str]) -> None:
        self.parameters = {"triton_final_response": type("P", (), {"bool_param": final})()}
        self.outputs = [type("O", (), {"name": n})() for n in names]


class _Result:
    def __init__(self, text: str, final: bool, routing: dict | None = None) -> None:
        self.outputs = {"text_output": [text.encode()]}
        if routing is not None:
            self.outputs["routing"] = [json.dumps(routing).encode()]
        self.final = final

    def as_numpy(self, name: str) -> Any:
        import numpy as np

        got = self.outputs.get(name)
        return None if got is None else np.array(got, dtype=np.object_)

    def get_response(self) -> _Response:
        return _Response(self.final, list(self.outputs))


class _Stream:
    """Yields `items`, then (as Triton does) ends only once the client has closed its side."""

    def __init__(self, requests: AsyncIterator[dict], items: list[tuple[Any, Any]]) -> None:
        self.requests, self.items = requests, list(items)
        self.cancelled = self.half_closed = False

    def __aiter__(self) -> "_Stream":
        return self

    async def __anext__(self) -> tuple[Any, Any]:
        if self.items:
            return self.items.pop(0)
        async for _ in self.requests:  # the client's side: ends when it closes
            pass
        self.half_closed = True
        raise StopAsyncIteration

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class _Silent(_Stream):
    """A router whose stub died: it never answers (Triton 24.10 does not end such a request)."""

    async def __anext__(self) -> tuple[Any, Any]:
        if self.items:
            return self.items.pop(0)
        await asyncio.sleep(3600)
        raise StopAsyncIteration


class _Client:
    def __init__(self, items: list[tuple[Any, Any]], dead: int = 0, dead_items: list | None = None) -> None:
        self.items, self.streams, self.dead, self.dead_items = items, [], dead, dead_items or []
        self.sent: list[dict] = []

    def stream_infer(self, requests: AsyncIterator[dict]) -> _Stream:
        if self.dead:  # the first `dead` calls meet a dead stub
            self.dead -= 1
            self.streams.append(_Silent(requests, list(self.dead_items)))
        else:
            self.streams.append(_Stream(requests, self.items))
        return self.streams[-1]

    async def is_model_ready(self, model: str) -> bool:
        return True


def _Call() -> RouterCall:
    return RouterCall(RouterRequest("hi"))


def _connection(items: list[tuple[Any, Any]], **dead: Any) -> tuple[RouterConnection, _Client]:
    conn = RouterConnection.__new__(RouterConnection)
    conn._client = _Client(items, **dead)
    return conn, conn._client


async def _all(conn: RouterConnection) -> list[Any]:
    return [event async for event in conn.events(_Call())]


def test_a_complete_answer_is_closed_not_cancelled() -> None:
    conn, client = _connection([(_Result("Par", False), None), (_Result("is", True, {"model": "m"}), None)])
    events = asyncio.run(_all(conn))
    assert events == [RouterAnswer("Par", final=False), RouterAnswer("is", True, {"model": "m"})]
    stream = client.streams[0]
    assert stream.half_closed and not stream.cancelled


def test_an_error_ends_the_request_and_is_not_cancelled_either() -> None:
    from tritonclient.utils import InferenceServerException

    conn, client = _connection([(None, InferenceServerException('{"kind": "overloaded", "message": "router overloaded", "retry_after_s": 2}'))])
    with pytest.raises(ApiError) as raised:
        asyncio.run(_all(conn))
    assert raised.value.status == 503 and raised.value.headers == {"Retry-After": "2"}
    stream = client.streams[0]
    assert stream.half_closed and not stream.cancelled


def test_a_client_that_leaves_mid_answer_cancels_it() -> None:
    conn, client = _connection([(_Result("Once", False), None), (_Result(" upon", False), None)])

    async def first_piece_only() -> None:
        events = conn.events(_Call())
        assert await events.__anext__() == RouterAnswer("Once", final=False)
        await events.aclose()  # the HTTP client went away

    asyncio.run(first_piece_only())
    assert client.streams[0].cancelled


def test_work_that_died_before_its_first_piece_is_retried_once(monkeypatch) -> None:
    monkeypatch.setattr("openai_front.connection.DEAD_AFTER_S", 0.2)
    alive: list[bool] = []

    async def answers_health(self) -> bool:  # the reloaded router answers its health check
        alive.append(True)
        return True

    monkeypatch.setattr(RouterConnection, "alive", answers_health)
    conn, client = _connection([(_Result("Paris", True, {"model": "m"}), None)])
    client.dead = 1
    events = asyncio.run(_all(conn))
    assert events == [RouterAnswer("Paris", True, {"model": "m"})]
    assert len(client.streams) == 2 and client.streams[0].cancelled  # the silent call was given up
    assert alive == [True]  # the retry waited for a router that answers


def test_a_stream_that_dies_after_a_piece_ends_with_an_error_not_a_retry(monkeypatch) -> None:
    monkeypatch.setattr("openai_front.connection.DEAD_AFTER_S", 0.2)
    conn, client = _connection([], dead=1, dead_items=[(_Result("Once", False), None)])
    got: list = []

    async def read() -> None:
        async for event in conn.events(_Call()):
            got.append(event)

    with pytest.raises(ApiError) as raised:
        asyncio.run(read())
    assert got == [RouterAnswer("Once", final=False)] and len(client.streams) == 1
    assert raised.value.status == 503 and "stopped answering" in raised.value.message


def test_the_router_is_asked_for_heartbeats(monkeypatch) -> None:
    seen: list[RouterCall] = []
    monkeypatch.setattr("openai_front.connection._inputs", lambda call: seen.append(call) or [])
    conn, _ = _connection([(_Result("ok", True, {}), None)])
    asyncio.run(_all(conn))
    from openai_front.connection import HEARTBEAT_S
    assert seen[0].request.options.heartbeat_s == HEARTBEAT_S
