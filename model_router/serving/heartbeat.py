"""Every response the router sends, on one thread, with heartbeats for the requests that ask.

One sender thread: Triton 24.10's Python stub crashed (SIGSEGV in TRITONBACKEND_ResponseSend, then
a boost lock_exception that took tritonserver down) when responses were sent from several threads
at once, as 16 route workers and a heartbeat thread did. Workers hand their responses to the
outbox instead, in order; the backend's responses loop does the same (transformers_backend.tasks).

Heartbeats: an empty response every few seconds on a request whose client asked (options.heartbeat_s),
so that the client can tell a router that is working from one whose process died (Triton 24.10
never ends the requests inside a dead stub). The beats come from the same thread.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable

log = logging.getLogger(__name__)
Send = Callable[[Any, int], None]  # (response, flags)
FINAL_FLAG = 1  # TRITONSERVER_RESPONSE_COMPLETE_FINAL


class Line:
    """One request's way out: its responses, in order, through the outbox; closed by its final one."""

    def __init__(self, send: Send, interval_s: float | None, outbox: queue.SimpleQueue, clock: Callable[[], float]):
        self._send, self.interval_s, self._outbox, self._clock = send, interval_s, outbox, clock
        self._lock = threading.Lock()
        self.last = clock()
        self.closed = False

    def send(self, response: Any, flags: int = 0) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = bool(flags & FINAL_FLAG)
            self.last = self._clock()
            self._outbox.put((self._send, response, flags))

    def due(self) -> bool:
        return not self.closed and bool(self.interval_s) and self._clock() - self.last >= self.interval_s


class Outbox:
    """The router's one response thread; `empty()` makes a heartbeat, every `tick_s` lines are checked."""

    def __init__(self, empty: Callable[[], Any], tick_s: float = 0.1, clock: Callable[[], float] = time.monotonic):
        self._empty, self._tick_s, self._clock = empty, tick_s, clock
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lines: set[Line] = set()
        self._lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="responses", daemon=True)
        self._thread.start()

    def open(self, send: Send, interval_s: float | None = None) -> Line:
        line = Line(send, interval_s, self._queue, self._clock)
        if interval_s:
            with self._lock:
                self._lines.add(line)
        return line

    def done(self, line: Line) -> None:
        with self._lock:
            self._lines.discard(line)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped = True
        self._queue.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._tick_s)
            except queue.Empty:
                item = ()
            if item is None:
                return
            if item:
                self._deliver(*item)
            self._beat()

    def _beat(self) -> None:
        with self._lock:
            due = [line for line in self._lines if line.due()]
        for line in due:
            line.send(self._empty())

    @staticmethod
    def _deliver(send: Send, response: Any, flags: int) -> None:
        try:
            send(response, flags)
        except Exception as exc:  # the client is gone: nothing to tell it, and the others go on
            log.warning("could not send a response: %s", exc)
