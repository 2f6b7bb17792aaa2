"""gRPC streams kept open between a thread's requests to decoupled models (the router).

A stream per request cost the client a handshake and a reader thread each time, and Triton a
stream's setup (client CPU per routed tts answer 3.28 ms against 1.88 ms on a kept stream,
tritonserver 1.65 against 1.40 ms: scripts/bench_cpu_split.py). Each thread keeps its stream while it sends one request after another; a stream
idle for IDLE_S is closed by a reaper thread, because Triton waits for every open stream before it
stops. A request that does not end cleanly (an error, silence, the caller stopped reading) cancels
its whole stream: it is the only request on it, so the cancellation reaches that request alone. A
request that ended with an error closes its stream without cancelling (a cancellation after the
last response races Triton 24.10's gRPC frontend, which then holds the model until the server stops:
triton-inference-server/server#8078).
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import tritonclient.grpc as grpcclient

IDLE_S = 0.5


class Stream:
    """One open stream and the responses of the one request on it."""

    def __init__(self, url: str, headers: dict[str, str] | None) -> None:
        self.client = grpcclient.InferenceServerClient(url)
        self.responses: queue.Queue = queue.Queue()
        self.busy, self.last_used = True, time.monotonic()  # made for a request
        self.reuse, self.cancel = False, True  # what its request's end allows: set by the caller (StreamPool.stream)
        self.client.start_stream(callback=self._on_response, headers=headers)

    def _on_response(self, result: Any, error: Any) -> None:
        if self.busy:
            self.responses.put((result, error))
        else:  # the stream failed while idle (the server went away): it is not reused
            self.reuse = False

    def close(self, cancel: bool) -> None:
        self.reuse = False
        try:
            self.client.stop_stream(cancel_requests=cancel)
        finally:
            self.client.close()


class StreamPool:
    """Each thread's kept stream to one server."""

    def __init__(self, url: str, headers: dict[str, str] | None) -> None:
        self.url, self.headers = url, headers
        self._lock = threading.Lock()
        self._kept: dict[int, Stream] = {}
        self._reaper: threading.Thread | None = None

    @contextmanager
    def stream(self) -> Iterator[Stream]:
        """This thread's stream, for one request. The caller sets `.reuse` when its request ended with
        its final response, else the stream is closed after it, cancelling the request unless
        `.cancel` is cleared (it ended with its error). A second request while this thread's stream is
        busy gets its own."""
        me, stale = threading.get_ident(), None
        with self._lock:
            kept = self._kept.get(me)
            if kept is not None and not kept.busy:
                if kept.reuse and kept.responses.empty():
                    kept.busy = True
                else:  # it failed while idle (the server went away): not reused
                    stale, kept = self._kept.pop(me), None
            else:
                kept = None
        if stale is not None:
            stale.close(cancel=False)
        stream = kept or Stream(self.url, self.headers)  # a new one is made busy
        try:
            yield stream
        finally:
            self._release(me, stream)

    def _release(self, me: int, stream: Stream) -> None:
        """After its request: kept for this thread's next one, or closed. Under the lock, so that the
        reaper never takes a stream between its request's end and its idle clock's start."""
        with self._lock:
            stream.last_used, stream.busy = time.monotonic(), False
            keep = stream.reuse and stream.responses.empty()  # an error that came after its answer: not kept
            if keep and self._kept.setdefault(me, stream) is not stream:
                keep = False  # this thread already keeps another (this was a nested request's)
            if not keep and self._kept.get(me) is stream:
                del self._kept[me]
            if keep and self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, name="idle-stream-reaper", daemon=True)
                self._reaper.start()
        if not keep:
            stream.close(cancel=stream.cancel and not stream.reuse)

    def _reap(self) -> None:
        """Close streams idle for IDLE_S; ends when none is kept (the next one kept starts it again)."""
        while True:
            time.sleep(IDLE_S / 2)
            with self._lock:
                now = time.monotonic()
                idle = [self._kept.pop(me) for me, s in list(self._kept.items())
                        if not s.busy and (not s.reuse or now - s.last_used >= IDLE_S)]
                done = not self._kept
                if done:
                    self._reaper = None
            for stream in idle:
                try:
                    stream.close(cancel=False)
                except Exception:  # a server gone away: nothing left to close
                    pass
            if done:
                return

    def close(self) -> None:
        """Close every kept stream now (one in use is closed by its request's end)."""
        with self._lock:
            idle = [me for me, s in self._kept.items() if not s.busy]
            kept = [self._kept.pop(me) for me in idle]
        for stream in kept:
            stream.close(cancel=False)
