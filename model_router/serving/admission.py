"""Backpressure for the router: a bounded number of requests running and waiting, and a bounded wait.

Triton's own queue policy needs its dynamic batcher, which on Python models without a batch
dimension crashes tritonserver 24.10 under concurrent requests (std::bad_alloc in the Python
backend; reproduced with 12-24 concurrent clients). So the router admits requests itself: beyond
`max_running + max_queued`, a request is turned away at once; one that waited longer than
`max_wait_s` for a worker is turned away when its turn comes. Both are UNAVAILABLE errors that
say which limit was hit, so that a client can back off and retry. A waiting request whose client
is gone is counted out as soon as it is found (drop_waiting), so that it holds no place.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ServingError


class Overloaded(ServingError):
    """The router is at its limit; the request was not started. A worker frees up within seconds at
    the rates two cores serve (README, Numbers): retry after that."""

    retry_after_s = 2.0


@dataclass(eq=False)
class Ticket:
    admitted_at: float
    state: str = "waiting"  # waiting | running | dropped
    request: Any = None     # what the caller needs to tell a waiting request it was dropped
    line: Any = None        # and how to tell it (its response sender)


class Admission:
    def __init__(self, max_running: int, max_queued: int, max_wait_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_running, self.max_queued, self.max_wait_s, self.clock = max_running, max_queued, max_wait_s, clock
        self._lock = threading.Lock()
        self._inside = 0  # running + waiting
        self._waiting: set[Ticket] = set()

    @property
    def inside(self) -> int:
        return self._inside

    def admit(self, request: Any = None) -> Ticket:
        """Count a request in, or raise Overloaded at once when running and waiting are full."""
        ticket = Ticket(self.clock(), request=request)
        with self._lock:
            if self._inside >= self.max_running + self.max_queued:
                raise Overloaded(f"router overloaded: {self.max_running} requests running and {self.max_queued} "
                                 "waiting (the limits); retry later")
            self._inside += 1
            self._waiting.add(ticket)
        return ticket

    def start(self, ticket: Ticket) -> bool:
        """A worker picked the request up: False when it was dropped while it waited (nothing to do);
        Overloaded if it waited too long (it is then done)."""
        with self._lock:
            if ticket.state == "dropped":
                return False
            ticket.state = "running"
            self._waiting.discard(ticket)
        waited = self.clock() - ticket.admitted_at
        if waited > self.max_wait_s:
            self.done()
            raise Overloaded(f"router overloaded: waited {waited:.1f} s for a worker (limit {self.max_wait_s:.0f} s); "
                             "retry later")
        return True

    def drop_waiting(self, gone: Callable[[Any], bool]) -> list[Ticket]:
        """Count out the waiting requests whose client is gone (`gone(ticket.request)`), freeing their
        places at once; their workers will find them dropped. Returns them."""
        with self._lock:
            candidates = list(self._waiting)
        dropped = []
        for ticket in candidates:
            if not gone(ticket.request):
                continue
            with self._lock:
                if ticket.state != "waiting":
                    continue
                ticket.state = "dropped"
                self._waiting.discard(ticket)
                self._inside -= 1
            dropped.append(ticket)
        return dropped

    def done(self) -> None:
        with self._lock:
            self._inside -= 1
