"""One `tritonserver` process (from the nvidia-pytriton wheel) on our model repository."""
from __future__ import annotations

import logging
import subprocess
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from model_router import REPO_ROOT

from .environment import RUN_DIR, prepare_backends, pytriton_root, server_env
from .process import free_port, group_members, spawn, stop_group, tail, wait_until

log = logging.getLogger(__name__)

# What Triton 24.10 logs before it exits with 1 when a stop outlasts --exit-timeout-secs. On SIGTERM it
# first waits for open HTTP connections, then for every model to unload, both within that one timeout.
EXIT_TIMEOUT_EXPIRED = "Exit timeout expired"


@dataclass
class TritonServer:
    """One tritonserver process in explicit model-control mode."""

    model_repository: Path = REPO_ROOT / "model_repository"
    http_port: int = 0
    grpc_port: int = 0
    metrics_port: int = 0
    load: list[str] = field(default_factory=list)
    log_file: Path | None = None
    # With a key, model control (the model-repository API) needs the header `admin-key: <key>`;
    # the router gets the key through TMR_ADMIN_KEY. Inference stays open.
    admin_key: str | None = None
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    # The server (frontends, router, classifier) runs at the serving models' priority: below it, a
    # busy LLM at nice -10 starved the router's admission, and a turned-away request took seconds
    # to hear so. Ignored where the user may not raise priority.
    nice: int = -10
    proc: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.http_port = self.http_port or free_port()
        self.grpc_port = self.grpc_port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        self.log_file = self.log_file or RUN_DIR / f"tritonserver-{self.http_port}.log"

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def shm_prefix(self) -> str:
        """The Python backend's shared-memory prefix of this server: unique, so that servers side by
        side never collide, and what a stop removes from /dev/shm."""
        return f"tmr{self.http_port}_"

    @property
    def returncode(self) -> int | None:
        """The server's exit status: None while it runs (or before it started), negative when a signal
        ended it (-9: killed)."""
        return None if self.proc is None else self.proc.poll()

    @property
    def admin_headers(self) -> dict[str, str] | None:
        return {"admin-key": self.admin_key} if self.admin_key else None

    def command(self) -> list[str]:
        backends = prepare_backends()
        return [
            str(pytriton_root() / "bin" / "tritonserver"),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends}",
            "--model-control-mode=explicit",
            f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}", f"--metrics-port={self.metrics_port}",
            "--allow-metrics=true", "--allow-gpu-metrics=false",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            "--backend-config=python,shm-default-byte-size=4194304",
            "--exit-timeout-secs=6",  # a stop with a dead stub or a load in flight ends within 10 s
            # Auto-complete starts an extra stub per Python model load (~1.3 s here); our configs
            # are complete, so loads skip it.
            "--disable-auto-complete-config",
            *([f"--http-restricted-api=model-repository:admin-key={self.admin_key}",
               f"--grpc-restricted-protocol=model-repository:admin-key={self.admin_key}"] if self.admin_key else []),
            *self.extra_args,
        ]

    def start(self, timeout: float = 120.0) -> TritonServer:
        """Start the server, wait until it is live and load `load`; a server that fails to is stopped."""
        env = server_env()
        env["TMR_CONTROL_URL"] = self.http_url  # the router drives model control through it
        if self.admin_key:
            env["TMR_ADMIN_KEY"] = self.admin_key
        env.update(self.env)
        log.info("starting tritonserver: http %s grpc %s metrics %s, log %s",
                 self.http_port, self.grpc_port, self.metrics_port, self.log_file)
        self.proc = spawn(self.command(), self.log_file, env, self.nice)
        try:
            self.wait_live(timeout)
            for name in self.load:
                self.load_model(name)
        except BaseException:
            self.stop()
            raise
        return self

    def client(self):
        """An HTTP client of this server; close it when done (see `_is_live`)."""
        import tritonclient.http as httpclient

        return httpclient.InferenceServerClient(self.http_url, network_timeout=600.0, connection_timeout=600.0)

    def wait_live(self, timeout: float) -> None:
        wait_until(self.proc, self._is_live, timeout, "tritonserver", self.log_file)

    def _is_live(self) -> bool:
        # Closed at once: Triton's stop waits (up to its exit timeout) for open HTTP connections, and a
        # client left to the garbage collector keeps its keep-alive connection open.
        with closing(self.client()) as client:
            return client.is_server_live()

    def load_model(self, name: str) -> None:
        started = time.perf_counter()
        with closing(self.client()) as client:
            client.load_model(name, headers=self.admin_headers)
        log.info("loaded %s in %.2fs", name, time.perf_counter() - started)

    def tail(self, lines: int = 40) -> str:
        return tail(self.log_file, lines)

    def stop(self, timeout: float = 8.0) -> int | None:
        """SIGTERM the server, wait up to `timeout`, then make sure nothing of its process group is left;
        returns its exit status (None if it never started).

        Triton drains for its exit timeout (6 s), but it will not exit while a model load is under way
        (a dead stub's model being reloaded, at idle priority): past `timeout` it is killed, so that a
        stop takes at most ~10 s whatever the models are doing."""
        if self.proc is None:
            return None
        rc = stop_group(self.proc, timeout, "tritonserver")
        # A killed server cannot remove its stubs' shared-memory regions: remove them here.
        for region in Path("/dev/shm").glob(f"{self.shm_prefix}*"):
            region.unlink(missing_ok=True)
        if rc == 1 and EXIT_TIMEOUT_EXPIRED in self.tail(5):
            log.warning("tritonserver exited with 1: its exit timeout ran out before every model had unloaded "
                        "(an HTTP client still connected, or stubs slow to tear down on a busy machine); any "
                        "stub it left was killed. See %s", self.log_file)
        return rc

    def group_pids(self) -> list[int]:
        """Live processes of the server's process group (itself and its stubs), zombies aside."""
        return [] if self.proc is None else [p.pid for p in group_members(self.proc.pid)]

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
