"""Start and stop the front as a process of its own (tooling for scripts/serve.py and the tests; the
front never imports it)."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from launcher import DEFAULT_MODELS_DIR, RUN_DIR, try_nice
from model_router import REPO_ROOT

from . import API_KEY_ENV

log = logging.getLogger(__name__)


@dataclass
class FrontProcess:
    """`python -m openai_front` on `port`, talking to Triton's gRPC at `triton_grpc`."""

    triton_grpc: str
    port: int = 9000
    host: str = "0.0.0.0"
    api_key: str | None = None
    log_file: Path | None = None
    env: dict[str, str] | None = None
    # Triton's server runs at nice -10 (launcher.TritonServer.nice); the front relays its stream and
    # would wait for a core behind a busy LLM at a lower priority. Ignored where not permitted.
    nice: int = -10
    proc: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.log_file = self.log_file or RUN_DIR / f"openai-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> FrontProcess:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **(self.env or {})}
        env.setdefault("TMR_MODELS", str(DEFAULT_MODELS_DIR))
        if self.api_key:
            env[API_KEY_ENV] = self.api_key  # not on the command line, where `ps` would show it
        with open(self.log_file, "ab") as out:
            # A session of its own: a terminal's Ctrl-C reaches serve.py, which stops the front in order.
            self.proc = subprocess.Popen([sys.executable, "-m", "openai_front", "--triton-grpc", self.triton_grpc,
                                          "--host", self.host, "--port", str(self.port)],
                                         stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT,
                                         start_new_session=True, preexec_fn=lambda: try_nice(self.nice))
        try:
            self._wait_up(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the OpenAI front exited with {self.proc.returncode}; see {self.log_file}:\n"
                                   f"{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if json.loads(resp.read()).get("status") == "ok":
                        return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the OpenAI front is not up after {timeout}s; see {self.log_file}")

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (uvicorn closes its connections, cancelling their router requests), then SIGKILL; 0 when
        it stopped as asked."""
        if self.proc is None:
            return None
        asked = self.proc.poll() is None
        if asked:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("the OpenAI front did not stop in %ss; killing it", timeout)
                os.killpg(self.proc.pid, signal.SIGKILL)
        rc = self.proc.wait()
        # uvicorn shuts down cleanly on SIGTERM, then re-raises it: exiting by our SIGTERM is a clean stop.
        return 0 if asked and rc == -signal.SIGTERM else rc

    def __enter__(self) -> FrontProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
