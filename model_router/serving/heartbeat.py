"""Heartbeats: an empty response every few seconds on a request whose client asked for them
(options.heartbeat_s), so that the client can tell a router that is working from one whose process
died. When the router's stub dies, Triton 24.10 never ends the requests that were inside it; a
client that hears nothing for a few heartbeats ends (and retries) the request itself.

One thread beats for every request; a request's own responses and its beats go through one lock.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

Send = Callable[[Any, int], None]  # (response, flags)


class Line:
    """One request's response sender, with the time of its last send."""

    def __init__(self, send: Send, interval_s: float | None, clock: Callable[[], float]) -> None:
        self._send, self.interval_s, self._clock = send, interval_s, clock
        self._lock = threading.Lock()
        self.last = clock()
        self.closed = False

    def send(self, response: Any, flags: int = 0) -> None:
        with self._lock:
            if self.closed:
                return
            self.last = self._clock()
            self._send(response, flags)

    def close(self) -> None:
        with self._lock:
            self.closed = True

    def beat(self, response: Any) -> None:
        with self._lock:
            if not self.closed and self.interval_s and self._clock() - self.last >= self.interval_s:
                self.last = self._clock()
                self._send(response, 0)


class Heartbeats:
    """Beats `empty()` on every open line whose interval has passed; `tick_s` is the resolution."""

    def __init__(self, empty: Callable[[], Any], tick_s: float = 0.25,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._empty, self._tick_s, self._clock = empty, tick_s, clock
        self._lines: set[Line] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._loop, name="heartbeats", daemon=True).start()

    def open(self, send: Send, interval_s: float | None) -> Line:
        line = Line(send, interval_s, self._clock)
        if interval_s:
            with self._lock:
                self._lines.add(line)
        return line

    def done(self, line: Line) -> None:
        line.close()
        with self._lock:
            self._lines.discard(line)

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self._tick_s):
            with self._lock:
                lines = list(self._lines)
            for line in lines:
                try:
                    line.beat(self._empty())
                except Exception:  # the client is gone: its request ends on its own
                    self.done(line)
