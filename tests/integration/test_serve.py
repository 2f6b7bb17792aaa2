"""scripts/serve.py, the run command's server: it serves, and SIGTERM or Ctrl-C stops it and every stub."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from client import RouterClient
from launcher import free_port
from model_router import REPO_ROOT

pytestmark = pytest.mark.integration


def _leftovers(port: int) -> list[str]:
    out = subprocess.run(["pgrep", "-fa", f"(http-port={port}|tmr{port}_)"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_signal(sig: signal.Signals) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "scripts" / "serve.py"), "--http-port", str(port),
                             "--grpc-port", str(free_port()), "--metrics-port", str(free_port()),
                             "--load", "query_classifier"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if "ready:" in line:
                break
        assert RouterClient(f"127.0.0.1:{port}").classify("read this aloud")["use_case"] == "tts"
        assert _leftovers(port), "the server should be running"
        started = time.monotonic()
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0
        assert time.monotonic() - started < 30
        assert _leftovers(port) == []
    finally:
        if proc.poll() is None:
            proc.kill()
