"""What integration tests start beside a tritonserver, and ask it through: the OpenAI front (and the
openai SDK's errors), a redis-server of their own, a router request with its connection closed."""
from __future__ import annotations

import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import openai
import pytest
import redis

from client import RouterClient
from client.api import Routed
from launcher import FrontProcess, TritonServer, free_port

from .observe import is_alive, wait_for

KEY = "test-key-14"  # the API key of the fronts started here
GREEDY = {"sampling_parameters": {"max_tokens": 8, "temperature": 0}}


def start_front(server: TritonServer, tmp: Path, api_key: str | None = KEY) -> FrontProcess:
    return FrontProcess(server.grpc_url, port=free_port(), host="127.0.0.1", api_key=api_key,
                        log_file=tmp / "openai.log").start()


def stop_front(front: FrontProcess) -> None:
    """It stops on SIGTERM by itself (exit 0), and its port is free after."""
    assert front.stop() == 0, front.tail()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{front.url}/health", timeout=2)


@contextmanager
def sdk_through_a_front(server: TritonServer, tmp: Path) -> Iterator[openai.OpenAI]:
    """The openai SDK on a front of its own beside `server` (no retries: each answer as the server gave it)."""
    front = start_front(server, tmp)
    try:
        yield openai.OpenAI(base_url=f"{front.url}/v1", api_key=KEY, max_retries=0, timeout=300)
    finally:
        stop_front(front)


def error_of(call: Callable[..., Any], *args: Any, **kwargs: Any) -> openai.APIStatusError:
    """The error an openai SDK call fails with (the test fails if it does not)."""
    with pytest.raises(openai.APIStatusError) as info:
        call(*args, **kwargs)
    return info.value


def ask(server: TritonServer, text: str, options: dict | None = None, protocol: str = "http",
        pieces: list[str] | None = None) -> Routed:
    """One router request (greedy and short unless `options` say otherwise) on a client of its own,
    closed after: an open connection would hold Triton's exit for its whole timeout."""
    client = RouterClient(server.http_url if protocol == "http" else server.grpc_url, protocol)
    try:
        return client.route(text, {**GREEDY, **(options or {})}, on_piece=pieces.append if pieces is not None else None)
    finally:
        client._client.close()


class RedisServer:
    """A redis-server of our own: no persistence, no config file, stopped (and reaped) by stop()."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (scripts/setup.sh installs Debian's)")
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(workdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port, socket_timeout=2)
        assert wait_for(self._answers, 20), f"redis-server on port {self.port} does not answer"

    def _answers(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.ConnectionError:
            assert self.proc.poll() is None, f"redis-server exited with {self.proc.returncode}"
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=20)
        self.client.close()
        assert not is_alive(self.proc.pid)
