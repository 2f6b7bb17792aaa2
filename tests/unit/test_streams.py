"""The response-stream deadline."""
from __future__ import annotations

import threading
import time

import pytest

from model_router.triton.bls import StreamTimeout, with_deadline


def test_passes_items_and_errors_through() -> None:
    assert list(with_deadline(lambda: iter([1, 2, 3]), 5)) == [1, 2, 3]

    def broken():
        yield 1
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(with_deadline(broken, 5))


def test_a_stream_that_never_ends_times_out_and_is_cancelled() -> None:
    forever = threading.Event()
    cancelled = []

    def stuck():
        yield "first"
        forever.wait()  # like the stream of a request whose stub died

    got = []
    started = time.monotonic()
    with pytest.raises(StreamTimeout, match="within 0 s"):
        for item in with_deadline(stuck, 0.3, on_timeout=lambda: cancelled.append(True)):
            got.append(item)
    assert got == ["first"] and cancelled == [True] and time.monotonic() - started < 30  # a hang bound only
    forever.set()


def test_a_cancelled_client_ends_the_wait_and_cancels_the_call() -> None:
    from model_router.errors import Cancelled

    cancelled_calls: list[bool] = []
    gone = {"now": False}

    def slow():
        yield "first"
        time.sleep(30)
        yield "never"

    stream = with_deadline(slow, 60, on_timeout=lambda: cancelled_calls.append(True), cancelled=lambda: gone["now"],
                           poll_s=0.05)
    assert next(stream) == "first"
    gone["now"] = True
    started = time.monotonic()
    with pytest.raises(Cancelled):
        next(stream)
    assert cancelled_calls == [True] and time.monotonic() - started < 30  # well short of the 60 s deadline
