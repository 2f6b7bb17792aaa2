"""The OpenAI-compatible front (`python -m openai_front`) as a process of its own, beside Triton."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from model_router import REPO_ROOT
from openai_front import API_KEY_ENV

from .environment import DEFAULT_MODELS_DIR, RUN_DIR
from .process import spawn, stop_group, tail, wait_until


@dataclass
class FrontProcess:
    """`python -m openai_front` on `port`, talking to Triton's gRPC at `triton_grpc`."""

    triton_grpc: str
    port: int = 9000
    host: str = "0.0.0.0"
    api_key: str | None = None
    log_file: Path | None = None
    env: dict[str, str] | None = None
    # Triton's server runs at nice -10 (TritonServer.nice); the front relays its stream and would wait
    # for a core behind a busy LLM at a lower priority. Ignored where not permitted.
    nice: int = -10
    proc: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.log_file = self.log_file or RUN_DIR / f"openai-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def returncode(self) -> int | None:
        """The front's exit status: None while it runs (or before it started), negative for a signal."""
        return None if self.proc is None else self.proc.poll()

    def start(self, timeout: float = 60.0) -> FrontProcess:
        """Start the front and wait until its /health answers ok; a front that fails to is stopped."""
        env = {**os.environ, **(self.env or {})}
        env.setdefault("TMR_MODELS", str(DEFAULT_MODELS_DIR))
        if self.api_key:
            env[API_KEY_ENV] = self.api_key  # not on the command line, where `ps` would show it
        command = [sys.executable, "-m", "openai_front", "--triton-grpc", self.triton_grpc,
                   "--host", self.host, "--port", str(self.port)]
        self.proc = spawn(command, self.log_file, env, self.nice, cwd=REPO_ROOT)
        try:
            wait_until(self.proc, self._healthy, timeout, "the OpenAI front", self.log_file)
        except BaseException:
            self.stop()
            raise
        return self

    def _healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
            return json.loads(resp.read()).get("status") == "ok"

    def tail(self, lines: int = 20) -> str:
        return tail(self.log_file, lines)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (uvicorn closes its connections, cancelling their router requests), then SIGKILL; 0 when
        it stopped as asked, None if it never started."""
        if self.proc is None:
            return None
        asked = self.proc.poll() is None
        rc = stop_group(self.proc, timeout, "the OpenAI front")
        # uvicorn shuts down cleanly on SIGTERM, then re-raises it: exiting by our SIGTERM is a clean stop.
        return 0 if asked and rc == -signal.SIGTERM else rc

    def __enter__(self) -> FrontProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
