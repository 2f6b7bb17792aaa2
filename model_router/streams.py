"""A deadline for a target's response stream.

When a target's stub process dies mid-request, Triton 24.10 never ends that request's BLS
response stream; reading it directly would hold a router worker forever. Read on a daemon
thread instead, and give up at the deadline.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
_END = object()


class StreamTimeout(TimeoutError):
    """The stream did not finish before its deadline."""


def with_deadline(responses: Callable[[], Iterable[T]], timeout_s: float, on_timeout: Callable[[], None] = lambda: None,
                  clock: Callable[[], float] = time.monotonic) -> Iterator[T]:
    """Yield what `responses()` yields, raising StreamTimeout once `timeout_s` have passed in all.

    `responses` is called on the reader thread, so a call that blocks before its first item is
    bounded too. `on_timeout` runs before the raise (cancel the request there).
    """
    items: queue.Queue = queue.Queue()

    def read() -> None:
        try:
            for item in responses():
                items.put((item, None))
        except BaseException as exc:  # handed to the caller
            items.put((None, exc))
        items.put((_END, None))

    threading.Thread(target=read, name="stream-reader", daemon=True).start()
    deadline = clock() + timeout_s
    while True:
        try:
            item, error = items.get(timeout=max(deadline - clock(), 0.0))
        except queue.Empty:
            on_timeout()
            raise StreamTimeout(f"no complete answer within {timeout_s:.0f} s") from None
        if error is not None:
            raise error
        if item is _END:
            return
        yield item
