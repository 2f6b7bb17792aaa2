"""The client's kept gRPC streams (client/streams.py): reused by a thread's next request, closed when
idle (Triton waits for open streams before it stops), cancelled when their request did not end.
The Triton side is in the integration tests (every gRPC route goes through these streams)."""
from __future__ import annotations

import queue
import threading
import time

import pytest

from client import streams


class FakeStream:
    """A stream that records how it was closed (no server)."""

    made: list["FakeStream"] = []

    def __init__(self, url: str, headers: dict[str, str] | None) -> None:
        self.busy, self.last_used, self.reuse, self.cancel = True, time.monotonic(), False, True
        self.responses: queue.Queue = queue.Queue()
        self.closed: bool | None = None  # None: open; else the cancel flag it was closed with
        FakeStream.made.append(self)

    def close(self, cancel: bool) -> None:
        assert self.closed is None, "closed twice"
        self.reuse, self.closed = False, cancel


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> streams.StreamPool:
    FakeStream.made = []
    monkeypatch.setattr(streams, "Stream", FakeStream)
    monkeypatch.setattr(streams, "IDLE_S", 0.2)
    return streams.StreamPool("localhost:1", None)


def ask(pool: streams.StreamPool, ends: str = "final") -> FakeStream:
    with pool.stream() as s:
        s.reuse, s.cancel = False, True
        if ends == "final":
            s.reuse = True
        elif ends == "error":
            s.cancel = False
    return s


def test_a_thread_reuses_its_stream_while_it_keeps_asking(pool: streams.StreamPool) -> None:
    first = ask(pool)
    assert [ask(pool) for _ in range(5)] == [first] * 5
    assert first.closed is None and len(FakeStream.made) == 1


def test_an_idle_stream_is_closed_without_cancelling(pool: streams.StreamPool) -> None:
    s = ask(pool)
    deadline = time.monotonic() + 5
    while s.closed is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert s.closed is False  # closed gracefully, soon after it went idle
    assert ask(pool) is not s  # the next request opens a new one


def test_a_request_that_did_not_end_cancels_its_stream(pool: streams.StreamPool) -> None:
    s = ask(pool, ends="abandoned")
    assert s.closed is True
    assert ask(pool) is not s


def test_a_request_that_ended_with_its_error_closes_without_cancelling(pool: streams.StreamPool) -> None:
    s = ask(pool, ends="error")
    assert s.closed is False  # a cancellation after the last response would hold the model (24.10)


def test_threads_have_streams_of_their_own(pool: streams.StreamPool) -> None:
    seen: list[FakeStream] = []
    together = threading.Barrier(3)  # all alive at once: a thread's id may be reused after it ends

    def asker() -> None:
        seen.append(ask(pool))
        together.wait(60)  # a hang bound only

    threads = [threading.Thread(target=asker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(s) for s in seen}) == 3


def test_a_nested_request_gets_its_own_stream_and_one_is_kept(pool: streams.StreamPool) -> None:
    kept = ask(pool)
    with pool.stream() as outer:
        assert outer is kept
        inner = ask(pool)
        assert inner is not outer
        outer.reuse = True
    assert inner.closed is False and kept.closed is None
    assert ask(pool) is kept


def test_an_error_that_came_after_the_answer_is_not_carried_to_the_next_request(pool: streams.StreamPool) -> None:
    with pool.stream() as s:
        s.reuse, s.cancel = True, False
        s.responses.put((None, "the server went away"))  # after its final response
    assert s.closed is False and ask(pool) is not s


def test_close_closes_every_kept_stream(pool: streams.StreamPool) -> None:
    s = ask(pool)
    pool.close()
    assert s.closed is False
