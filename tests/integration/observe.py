"""What a server is doing, seen from outside the code under test: processes and their memory (PSS) and
CPU time from /proc, shared memory from /dev/shm, loaded models from Triton's repository index, memory
from the registry's declarations, metrics (the LLM backend's own counters among them) from Triton's
metrics port, the router's model-control calls from a proxy in front of Triton.

The launcher and the router's loader keep their own books (group_pids, tmr_memory_used_mb); a test
that graded them by those books would pass whenever the books were wrong in the same way."""
from __future__ import annotations

import http.client
import http.server
import inspect
import json
import os
import re
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from client import RouterClient
from launcher import TritonServer
from launcher.process import cpu_seconds
from model_router.registry import REGISTRY_FILE, load_registry
from model_router.serving.loader import ModelLoader

LLM = "smollm2_135m_instruct"  # the CPU LLM, served by our transformers backend
# How long a model-control call or an unload may take: as long as the router's loader allows Triton's unload.
UNLOAD_WITHIN_S: float = inspect.signature(ModelLoader).parameters["unload_timeout_s"].default
# Triton's repository-index states of a model that holds (or is about to hold, or still holds) memory.
HOLDING = {"READY", "LOADING", "UNLOADING"}


def shm_prefix(server: TritonServer) -> str:
    """The Python backend's shared-memory prefix the launcher gives this server (see its command)."""
    return f"tmr{server.http_port}_"


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def is_alive(pid: int) -> bool:
    """Running or sleeping; a zombie (dead, not yet reaped by its parent) is not alive."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def server_processes(server: TritonServer) -> dict[int, list[str]]:
    """Live processes of this server: tritonserver itself and any stub, found by the server's shm prefix
    or its --http-port on their command line, or by having the server as their parent."""
    prefix, port_arg = shm_prefix(server), f"--http-port={server.http_port}"
    server_pid = server.proc.pid if server.proc is not None else -1
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            continue
        args = _cmdline(pid)
        if stat[1] == server_pid or any(prefix in a or a == port_arg for a in args):
            found[pid] = args
    return found


def stub_pid(server: TritonServer, model: str) -> int:
    """The live stub serving `model` (the stub's arguments name its instance, <model>_0_0, and the shm prefix)."""
    instance = f"{model}_0_0"
    for pid, args in server_processes(server).items():
        if any(a.endswith("triton_python_backend_stub") for a in args[:1]) and instance in args:
            return pid
    raise AssertionError(f"no live stub for {model} among {sorted(server_processes(server))}")


def pss_mb(pid: int) -> float:
    """The process's proportional set size (its own pages, plus its share of pages it shares), in MB."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
    return kb / 1024


def shm_regions(server: TritonServer) -> list[Path]:
    return sorted(Path("/dev/shm").glob(f"{shm_prefix(server)}*"))


def wait_for(condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.1) -> bool:
    """Poll `condition` until it holds or `timeout_s` passed; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return condition()
        time.sleep(poll_s)
    return True


def settled(read: Callable[[], float], quiet_s: float = 1.0, within_s: float = 120.0) -> float:
    """A counter's value once it has stopped moving for `quiet_s` (the backend ships its counts every 250 ms)."""
    deadline, last = time.monotonic() + within_s, read()
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = read()
        if now == last:
            return now
        last = now
    raise AssertionError(f"the counter still moves after {within_s} s")


def goes_quiet(pid: int, timeout_s: float = 120.0, window_s: float = 1.0) -> float:
    """Waits until the process uses (almost) no CPU for `window_s`; how long that took. An LLM still
    generating uses a core or more; an idle stub a few ms."""
    started = time.monotonic()
    while True:
        before = cpu_seconds(pid)
        time.sleep(window_s)
        if cpu_seconds(pid) - before < 0.1 * window_s:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout_s, f"the process {pid} is still busy after {timeout_s} s"


def _label_matches(key: str, got: str | None, want: str) -> bool:
    """A histogram's bucket bound is a number: Triton prints le="1" where one may write "1.0"."""
    if key == "le" and got is not None:
        return float(got) == float(want)
    return got == want


def metric(server: TritonServer, name: str, suffix: str = "", absent: float | None = None, **labels: str) -> float:
    """The sum of metric `name` (+ `suffix`: _bucket, _count, _sum) over the series matching `labels`,
    from Triton's metrics port. No matching series fails the test, unless `absent` says what that
    means (a labelled counter before its first increment: for a reading taken *before* the action, or
    one that a missing series cannot make pass)."""
    from client.stats import parse

    rows = parse(RouterClient(server.http_url).metrics(f"127.0.0.1:{server.metrics_port}")).get(name, [])
    values = [v for got, sfx, v in rows
              if sfx == suffix and all(_label_matches(k, got.get(k), w) for k, w in labels.items())]
    if not values:
        assert absent is not None, f"no series {name}{suffix} with {labels} among {[r[0] for r in rows][:20]}"
        return absent
    return sum(values)


def llm_tokens(server: TritonServer, absent: float | None = None, model: str = LLM) -> float:
    """Tokens the LLM's backend generated: its own counter, on Triton's metrics port (`absent`: see metric)."""
    return metric(server, "tmr_generation_tokens_total", model=model, absent=absent)


def llm_requests(server: TritonServer, result: str, absent: float | None = None, model: str = LLM) -> float:
    """The LLM backend's requests that ended with `result` (finished, cancelled, failed)."""
    return metric(server, "tmr_generation_requests_total", model=model, result=result, absent=absent)


def model_states(client: RouterClient) -> dict[str, str]:
    """Triton's own word: every model of the repository index and its state."""
    return {m["name"]: m["state"] for m in client.models()}


def _post(server: TritonServer, path: str) -> bytes:
    """A model-repository call with plain urllib: safe on any thread (tritonclient's HTTP client is
    gevent's, bound to the thread that made it) and leaves no connection open."""
    req = urllib.request.Request(f"http://{server.http_url}/v2/repository/{path}", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json", **(server.admin_headers or {})})
    with urllib.request.urlopen(req, timeout=UNLOAD_WITHIN_S) as resp:
        return resp.read()


def index_states(server: TritonServer) -> dict[str, str]:
    """model_states, from the server's HTTP repository index."""
    return {m["name"]: m.get("state", "") for m in json.loads(_post(server, "index"))}


def ready_models(client: RouterClient) -> set[str]:
    return {name for name, state in model_states(client).items() if state == "READY"}


def declared_mb(server: TritonServer) -> dict[str, float]:
    """memory_mb of each model in the registry the server's router reads (TMR_REGISTRY, else the default)."""
    registry = load_registry(server.env.get("TMR_REGISTRY", REGISTRY_FILE))
    return {name: spec.memory_mb for name, spec in registry.models.items()}


class MemoryWatch:
    """Samples Triton's repository index on a thread and records the largest declared memory of the
    models Triton holds (READY, LOADING or UNLOADING) and every model it saw READY."""

    def __init__(self, server: TritonServer, poll_s: float = 0.1) -> None:
        self.server = server
        self.memory = declared_mb(server)
        self.poll_s = poll_s
        self.peak_mb, self.peak_models = 0.0, frozenset[str]()
        self.seen_ready: set[str] = set()
        self.held: list[frozenset[str]] = []  # per sample, the models Triton held at that moment
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-watch", daemon=True)

    def sample(self) -> None:
        states = index_states(self.server)
        holding = frozenset(n for n, s in states.items() if s in HOLDING)
        total = sum(self.memory.get(n, 0.0) for n in holding)
        self.seen_ready |= {n for n, s in states.items() if s == "READY"}
        self.held.append(holding)
        self.samples += 1
        if total > self.peak_mb:
            self.peak_mb, self.peak_models = total, holding

    def held_together(self, models: set[str]) -> list[frozenset[str]]:
        """The samples in which Triton held all of `models` at once."""
        return [held for held in self.held if models <= held]

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.poll_s)

    def __enter__(self) -> "MemoryWatch":
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


@contextmanager
def leave_as_found(server: TritonServer) -> Iterator[None]:
    """Restore the set of READY models after the block: unload what it loaded, load back what it unloaded."""
    def ready() -> set[str]:
        return {name for name, state in index_states(server).items() if state == "READY"}

    before = ready()
    try:
        yield
    finally:
        added = ready() - before
        # The router first, and gone before the rest: it loads models on demand (its metrics model
        # too), and must not load anything while we clean up.
        if "router" in added:
            _post(server, "models/router/unload")
            assert wait_for(lambda: index_states(server).get("router") not in HOLDING, UNLOAD_WITHIN_S), \
                f"the router did not unload within {UNLOAD_WITHIN_S} s"
            added = ready() - before
        for name in sorted(added):
            _post(server, f"models/{name}/unload")
        for name in sorted(added):
            wait_for(lambda: index_states(server).get(name) not in HOLDING, UNLOAD_WITHIN_S)
        for name in sorted(before - ready()):
            _post(server, f"models/{name}/load")
        assert ready() == before, f"could not restore the server's models: {ready()} instead of {before}"


class ControlProxy:
    """A counting proxy between the router and Triton's HTTP API (the router's TMR_CONTROL_URL): it
    forwards every call as it is and records each model load the router asks for, so that a test
    counts the loads at the wire rather than by the router's own metrics or decisions."""

    LOAD = re.compile(r"^/v2/repository/models/([^/]+)/load$")

    def __init__(self, triton_http_port: int) -> None:
        self.loads: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the router's client expects

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "POST" and (m := ControlProxy.LOAD.match(self.path)):
                    with proxy._lock:
                        proxy.loads.append(m.group(1))
                skip = {"host", "content-length", "connection"}
                conn = http.client.HTTPConnection("127.0.0.1", triton_http_port)
                try:
                    conn.request(self.command, self.path, body,
                                 {k: v for k, v in self.headers.items() if k.lower() not in skip})
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in skip | {"transfer-encoding"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="control-proxy", daemon=True)

    def count(self, model: str) -> int:
        with self._lock:
            return self.loads.count(model)

    def __enter__(self) -> "ControlProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
