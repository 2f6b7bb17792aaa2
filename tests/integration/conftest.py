from __future__ import annotations

import gc
import re
import signal
import warnings
from typing import Iterator

import pytest

from client import RouterClient
from launcher import TritonServer

from .observe import LLM, server_processes, shm_regions  # noqa: F401 (LLM: the tests' name for it)
from .stub_kill import sigkill_stub

# Servers (by id) whose tests SIGKILLed one of their stubs (kill_stub).
_STUB_KILLED: set[int] = set()


def kill_stub(server: TritonServer, pid: int) -> None:
    """SIGKILL a stub of `server` (outside its shared-memory locks: stub_kill); its stop may then run
    into the exit timeout (stop_server)."""
    _STUB_KILLED.add(id(server))
    sigkill_stub(pid)


def start_server(load: list[str], **kwargs) -> TritonServer:
    # Without the response cache, unless a test asks for one (test_cache): a repeated question must
    # reach the models in tests of routing, batching and faults. With the registry's hand-set policy,
    # unless a test names a learned one (test_routing_value): the tests of everything else route as
    # the registry says, whatever the shipped policy learned.
    kwargs["env"] = {"TMR_CACHE_URL": "off", "TMR_LEARNED_POLICY": "off", **kwargs.get("env", {})}
    return TritonServer(load=load, **kwargs).start(timeout=300)


def stop_server(server: TritonServer, killed: bool = False, timeout: float = 30.0) -> None:
    """Stop the server; then, seen from /proc and /dev/shm rather than the launcher's own books, nothing
    of it is left. `killed`: the server will not stop on SIGTERM, and the launcher must kill it."""
    assert shm_regions(server), "the server's shared-memory prefix matches nothing: the check below would be empty"
    # HTTP clients kept alive only by reference cycles (a pytest.raises traceback holds the test's frame)
    # keep their connections open, and Triton waits out its exit timeout for them, then exits 1.
    gc.collect()
    rc = server.stop(timeout)
    assert server_processes(server) == {}, "processes of the server outlived it"
    assert shm_regions(server) == [], "shared-memory regions of the server outlived it"
    if killed:
        assert rc == -signal.SIGKILL, f"tritonserver exited with {rc}, not killed; see {server.log_file}"
        return
    # A negative return code is a signal: tritonserver crashed (SIGSEGV, SIGABRT) or had to be killed.
    assert rc is not None and rc >= 0, f"tritonserver died of signal {-(rc or 0)}; see {server.log_file}"
    if rc != 0:
        _explain_unclean_exit(server, rc, id(server) in _STUB_KILLED)


def _explain_unclean_exit(server: TritonServer, rc: int, stub_killed: bool) -> None:
    """Triton exits 1 when its exit timeout (6 s) runs out with models still tearing down and nothing
    in flight. After a test killed a stub this is Triton 24.10's, and expected: an instance whose stub
    died is sent its finalize anyway and waited on until the exit timeout (README, Not yet), and the
    LLM's send to a requester killed mid-stream never returns. Otherwise it is a warning (stubs slow
    to tear down on a busy machine). Anything else (a request or a client connection left open by a
    test, another exit status) fails."""
    last = re.findall(r'Timeout 0: Found (\d+) live models and (\d+) in-flight non-inference requests',
                      server.log_file.read_text(errors="replace"))
    assert rc == 1 and last and int(last[-1][0]) > 0 and last[-1][1] == "0", \
        f"tritonserver exited with {rc}, not from slow model teardown; see {server.log_file}"
    if stub_killed:
        return
    warnings.warn(f"tritonserver exited with 1: {last[-1][0]} model(s) still tearing down when its exit timeout "
                  f"ran out, nothing in flight (a busy machine); see {server.log_file}", stacklevel=3)


@pytest.fixture
def http(server: TritonServer) -> Iterator[RouterClient]:
    client = RouterClient(server.http_url, "http")
    yield client
    # pytest still holds the last test's fixture values when it stops the session's server, and Triton
    # waits out its exit timeout for an open HTTP connection: close it now.
    client.close()


@pytest.fixture
def grpc(server: TritonServer) -> Iterator[RouterClient]:
    client = RouterClient(server.grpc_url, "grpc")
    yield client
    client.close()  # its kept stream: Triton waits for open streams before it stops
