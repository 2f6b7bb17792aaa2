"""Start and stop a real `tritonserver` (from the nvidia-pytriton wheel) on our model repository.

Tooling, not the runtime: used by scripts/serve.py, the benchmarks and the integration tests' fixtures.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from model_router import REPO_ROOT
from model_router.serving.recovery import fresh_config
from model_router.serving.stubs import stub_pids
from model_router.triton.control import TritonModelControl

log = logging.getLogger(__name__)

RUN_DIR = REPO_ROOT / ".run"
DEFAULT_MODELS_DIR = REPO_ROOT / ".cache" / "models"


def pytriton_root() -> Path:
    """The folder of the tritonserver build that ships inside nvidia-pytriton."""
    import pytriton

    root = Path(pytriton.__file__).resolve().parent / "tritonserver"
    if not (root / "bin" / "tritonserver").exists():
        raise FileNotFoundError(f"tritonserver not found under {root}; is nvidia-pytriton==0.7.0 installed?")
    return root


def prepare_backends(dest: Path = RUN_DIR / "backends") -> Path:
    """Backend dir: Triton's Python backend with the stub for this Python, plus ours (linked)."""
    root = pytriton_root()
    py = dest / "python"
    stub = root / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}" / "triton_python_backend_stub"
    if not (py / "triton_python_backend_stub").exists():
        shutil.copytree(root / "backends" / "python", py, dirs_exist_ok=True)
        shutil.copy2(stub, py / "triton_python_backend_stub")
    for backend in (REPO_ROOT / "python_backends").iterdir():
        link = dest / backend.name
        if backend.is_dir() and not link.exists():
            link.symlink_to(backend, target_is_directory=True)
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(models_dir: Path = DEFAULT_MODELS_DIR) -> dict[str, str]:
    import pytriton

    libs = Path(pytriton.__file__).resolve().parent.parent / "nvidia_pytriton.libs"
    env = dict(os.environ)
    py_libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(libs), py_libdir, env.get("LD_LIBRARY_PATH", "")) if p)
    # The stub embeds Python, ignores PYTHONPATH and finds its prefix through the `python3` on
    # PATH: put this interpreter's bin first so that the stub runs in our venv (numpy<2 there).
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.setdefault("TMR_MODELS", str(models_dir))
    env.setdefault("TMR_REPO", str(REPO_ROOT))
    env.setdefault("OMP_NUM_THREADS", "2")
    # OpenMP threads spin briefly between parallel regions, then sleep. Spinning at will (OpenMP's
    # default, 300,000 spins) let a generating LLM at serving priority starve the router and Triton's
    # frontends on 2 cores; sleeping at once (PASSIVE) left a batched decode step's many small regions
    # waiting on wake-ups. 8 streams through the router, scripts/bench_batching.py: 1.15 answers/s
    # spinning, 1.75 passive, 2.07 with 300 spins, 2.24-2.29 with 2,000 (x4.3-4.4 concurrency 1).
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("GOMP_SPINCOUNT", "2000")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("TQDM_DISABLE", "1")  # no progress bars in the server log
    return env


def try_nice(value: int) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, value)
    except OSError:  # not permitted: run at the default priority
        pass


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

    def command(self) -> list[str]:
        backends = prepare_backends()
        return [
            str(pytriton_root() / "bin" / "tritonserver"),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends}",
            "--model-control-mode=explicit",
            f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}", f"--metrics-port={self.metrics_port}",
            "--allow-metrics=true", "--allow-gpu-metrics=false",
            # A unique shared-memory prefix per server, so that servers side by side never collide.
            f"--backend-config=python,shm-region-prefix-name=tmr{self.http_port}_",
            "--backend-config=python,shm-default-byte-size=4194304",
            "--exit-timeout-secs=6",  # a stop with a dead stub or a load in flight ends within 10 s
            # Auto-complete starts an extra stub per Python model load (~1.3 s here); our configs
            # are complete, so loads skip it.
            "--disable-auto-complete-config",
            *([f"--http-restricted-api=model-repository:admin-key={self.admin_key}",
               f"--grpc-restricted-protocol=model-repository:admin-key={self.admin_key}"] if self.admin_key else []),
            *self.extra_args,
        ]

    def start(self, timeout: float = 120.0) -> "TritonServer":
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        env = server_env()
        env["TMR_CONTROL_URL"] = self.http_url  # the router drives model control through it
        if self.admin_key:
            env["TMR_ADMIN_KEY"] = self.admin_key
        env.update(self.env)
        log.info("starting tritonserver: http %s grpc %s metrics %s, log %s",
                 self.http_port, self.grpc_port, self.metrics_port, self.log_file)
        with open(self.log_file, "ab") as out:
            # Own process group, so that stop() can reach the stub processes too.
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True, preexec_fn=lambda: try_nice(self.nice))
        try:
            self.wait_live(timeout)
            for name in self.load:
                self.load_model(name)
        except BaseException:
            self.stop()
            raise
        return self

    def client(self):
        import tritonclient.http as httpclient

        return httpclient.InferenceServerClient(self.http_url, network_timeout=600.0, connection_timeout=600.0)

    def wait_live(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"tritonserver exited with {self.proc.returncode}; see {self.log_file}:\n{self.tail()}")
            try:
                if self.client().is_server_live():
                    return
            except Exception:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"tritonserver not live after {timeout}s; see {self.log_file}")

    @property
    def admin_headers(self) -> dict[str, str] | None:
        return {"admin-key": self.admin_key} if self.admin_key else None

    def load_model(self, name: str) -> None:
        started = time.perf_counter()
        self.client().load_model(name, headers=self.admin_headers)
        log.info("loaded %s in %.2fs", name, time.perf_counter() - started)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 8.0) -> int | None:
        """SIGTERM the server, wait up to `timeout`, then make sure nothing of its process group is left.

        Triton drains for its exit timeout (6 s), but it will not exit while a model load is under way
        (a dead stub's model being reloaded, at idle priority): past `timeout` it is killed, so that a
        stop takes at most ~10 s whatever the models are doing."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("tritonserver did not stop in %ss; killing it", timeout)
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        deadline = time.monotonic() + 10
        while self.group_pids() and time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # stubs left behind, if any
            except ProcessLookupError:
                break
            time.sleep(0.1)
        # A killed server cannot remove its stubs' shared-memory regions: remove them here.
        for region in Path("/dev/shm").glob(f"tmr{self.http_port}_*"):
            region.unlink(missing_ok=True)
        return self.proc.returncode

    def group_pids(self) -> list[int]:
        """Live processes of the server's process group (its stubs), zombies aside."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == self.proc.pid:
                pids.append(int(entry))
        return pids

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def keep_router_alive(server: TritonServer, stop: threading.Event, every_s: float = 2.0) -> None:
    """The run command's watchdog for the router's own stub, on a thread beside the server: the router
    heals the models it routes to, but nothing inside Triton restarts the router when its stub dies
    (24.10 still calls it READY, and its requests hang). Reload it with a config override, as the
    router does for its targets; requests that were inside the dead one are lost."""
    control = TritonModelControl(server.http_url, server.admin_headers)
    while not stop.wait(every_s) and server.proc.poll() is None:
        try:
            if control.states().get("router") != "READY" or stub_pids(server.proc.pid).get("router"):
                continue
            log.warning("router: its stub died; reloading it")
            control.load("router", fresh_config(control.config("router")))
            log.info("router: back")
        except Exception as exc:  # the server stopping, or a load that failed: try again next round
            log.warning("router: could not reload it: %s", exc)
