"""The text generator's responses, sent on a thread of its own."""
from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable


class Outbox:
    """Sends responses on a thread of its own, in order, so that the batch's next step need not wait
    for each send's round trip to the server (the vLLM backend's response loop does the same).

    A send can block for good: in Triton 24.10 a response to a BLS requester whose stub died (a
    router killed while this model streamed to it) never returns, and every answer queued behind it
    waited with it. A send that has not returned within `stuck_s` is left behind: its requester
    gets nothing more, and a new thread sends the rest (one sending thread at a time otherwise,
    since 24.10's stub crashed on concurrent sends)."""

    def __init__(self, warn: Callable[[str], Any] = print, stuck_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._warn = warn
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stuck_s, self._clock = stuck_s, clock
        self._lock = threading.Lock()
        self._sending: tuple[int, Any, float] | None = None  # (thread generation, sender, since)
        self._abandoned: dict[int, Any] = {}  # senders whose requesters take no more responses (kept, so ids stay theirs)
        self._generation = 0
        self._closed = threading.Event()
        self._thread = self._start()
        threading.Thread(target=self._watch, name="responses-watch", daemon=True).start()

    def put(self, item: tuple) -> None:
        self._queue.put(item)

    def gave_up(self, sender: Any) -> bool:
        """True once a send to `sender` was left behind: its request need not be generated further."""
        return id(sender) in self._abandoned

    def _start(self) -> threading.Thread:
        self._generation += 1
        thread = threading.Thread(target=self._loop, args=(self._generation,), name="responses", daemon=True)
        thread.start()
        return thread

    def _loop(self, generation: int) -> None:
        while generation == self._generation and (item := self._queue.get()) is not None:
            model, sender, response, flags = item
            with self._lock:
                if id(sender) in self._abandoned:
                    continue
                self._sending = (generation, sender, self._clock())
            try:
                if response is None:
                    sender.send(flags=flags)
                else:
                    sender.send(response, flags=flags)
            except Exception as exc:  # the client is gone: nothing to tell it, and the batch goes on
                self._warn(f"{model}: could not send a response: {exc}")
            with self._lock:
                if self._sending and self._sending[0] == generation:
                    self._sending = None
        if generation == self._generation:
            self._closed.set()

    def _watch(self) -> None:
        while not self._closed.wait(min(self._stuck_s / 4, 1.0)):
            with self._lock:
                if self._sending is None or self._clock() - self._sending[2] < self._stuck_s:
                    continue
                _, sender, _ = self._sending
                self._abandoned[id(sender)] = sender
                self._sending = None
                self._thread = self._start()
            self._warn(f"a response send blocked for {self._stuck_s:.0f} s (its requester is gone): "
                                     "that request gets no more responses; the others are sent on")

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)
        self._closed.set()
