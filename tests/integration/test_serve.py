"""scripts/serve.py, the run command's server: it serves Triton and the OpenAI API beside it, and SIGTERM or
Ctrl-C stops both and every stub; when Triton stops on its own, the front stops with it."""
from __future__ import annotations

import inspect
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.request
from types import SimpleNamespace

import pytest

from client import RouterClient
from client.api import InferenceServerException
from launcher import TritonServer, free_port
from model_router import REPO_ROOT

from .observe import is_alive, server_processes, shm_regions, wait_for

pytestmark = pytest.mark.integration
# The waits, from what serve.py allows itself: server.start(timeout=300) to be ready, and on a signal
# TritonServer.stop's wait, then up to 10 s to kill what is left of its process group.
READY_WITHIN_S = 300 + 30
STOP_WITHIN_S = inspect.signature(TritonServer.stop).parameters["timeout"].default + 10 + 30


def _lines(stream) -> queue.Queue:
    """The stream's lines, read on a thread, so that waiting for one can time out."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)  # end of output

    threading.Thread(target=read, daemon=True).start()
    return lines


def _wait_for_line(lines: queue.Queue, needle: str, timeout_s: float) -> str:
    seen: list[str] = []
    while True:
        line = lines.get(timeout=timeout_s)  # queue.Empty past the wait: the test fails
        if line is None:
            raise AssertionError(f"serve.py ended before printing {needle!r}:\n{''.join(seen[-20:])}")
        seen.append(line)
        if needle in line:
            return line


def front_processes(port: int) -> list[int]:
    """Live OpenAI fronts serving `port` (each runs in a session of its own), seen from /proc."""
    found = []
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "openai_front" in args and str(port) in args and is_alive(pid):
            found.append(pid)
    return found


def _serve(port: int, openai_port: int, load: tuple[str, ...] | None = ("query_classifier",)) -> subprocess.Popen:
    """serve.py on ports of its own, loading `load` (None: what the run command loads)."""
    loads = ["--load", *load] if load is not None else []
    return subprocess.Popen([sys.executable, str(REPO_ROOT / "scripts" / "serve.py"), "--http-port", str(port),
                             "--grpc-port", str(free_port()), "--metrics-port", str(free_port()),
                             "--openai-port", str(openai_port), *loads,
                             "--decision-log", "off"],  # a run leaves the tree as it found it
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _openai_models(openai_port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{openai_port}/v1/models", timeout=30) as resp:
        return [m["id"] for m in json.loads(resp.read())["data"]]


def _kill_all(proc: subprocess.Popen, server: SimpleNamespace, openai_port: int = 0) -> None:
    """serve.py's process group, then what it started in sessions of their own (tritonserver and stubs, the
    OpenAI front), then the shared memory a killed server cannot remove."""
    for pgid in {proc.pid, *server_processes(server), *front_processes(openai_port)}:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait(10)
    wait_for(lambda: not server_processes(server), 10)
    for region in shm_regions(server):
        region.unlink(missing_ok=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_signal(sig: signal.Signals) -> None:
    port, openai_port = free_port(), free_port()
    # What observe.py needs to find the server's processes and shared memory from outside.
    server = SimpleNamespace(http_port=port, proc=None)
    proc = _serve(port, openai_port)
    try:
        lines = _lines(proc.stdout)
        _wait_for_line(lines, "ready:", READY_WITHIN_S)
        assert RouterClient(f"127.0.0.1:{port}").classify("read this aloud")["use_case"] == "tts"
        running = server_processes(server)
        assert any(args[0].endswith("tritonserver") for args in running.values()), running
        assert any(args[0].endswith("triton_python_backend_stub") for args in running.values()), running
        assert shm_regions(server)
        # The OpenAI API is up beside it, on its port.
        assert _openai_models(openai_port)[0] == "auto" and len(front_processes(openai_port)) == 1
        proc.send_signal(sig)
        assert proc.wait(timeout=STOP_WITHIN_S) == 0
        assert server_processes(server) == {}
        assert shm_regions(server) == []
        assert front_processes(openai_port) == []
    finally:
        if proc.poll() is None or server_processes(server) or front_processes(openai_port):
            _kill_all(proc, server, openai_port)


def test_a_stop_takes_at_most_readmes_10_s_with_the_llm_mid_generation() -> None:
    """README: Ctrl-C or SIGTERM stops the API, Triton and every stub within 10 s whatever the models are
    doing. The bound is the promise itself (plus a second for this test's own polling), not a speed target."""
    port, openai_port = free_port(), free_port()
    server = SimpleNamespace(http_port=port, proc=None)
    proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "scripts" / "serve.py"), "--http-port", str(port),
                             "--grpc-port", str(grpc_port := free_port()), "--metrics-port", str(free_port()),
                             "--openai-port", str(openai_port), "--load", "query_classifier", "router",
                             "smollm2_135m_instruct", "--decision-log", "off"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _wait_for_line(_lines(proc.stdout), "ready:", READY_WITHIN_S)
        pieces: queue.Queue = queue.Queue()
        ended: list[str] = []
        story = threading.Thread(target=_long_story, args=(f"127.0.0.1:{grpc_port}", pieces, ended), daemon=True)
        story.start()
        pieces.get(timeout=300)  # the LLM is generating
        proc.send_signal(signal.SIGTERM)
        stopped = wait_for(lambda: proc.poll() is not None and not server_processes(server)
                           and not front_processes(openai_port) and not shm_regions(server), 10 + 1, poll_s=0.05)
        assert stopped, f"still there 11 s after SIGTERM: serve.py rc {proc.poll()}, {sorted(server_processes(server))}"
        assert proc.returncode == 0
        story.join(60)  # a hang bound: the client hears its server gone
        # Cut short by the stop, not finished first: the whole answer would end with "length" (ignore_eos).
        assert ended and ended[0] != "finished: length", ended
    finally:
        if proc.poll() is None or server_processes(server) or front_processes(openai_port):
            _kill_all(proc, server, openai_port)


def _long_story(grpc_url: str, pieces: queue.Queue, ended: list[str]) -> None:
    """A 1000-token answer streamed through the router; each piece into `pieces` until the server goes,
    and how the answer ended into `ended`: "finished: <finish reason>", or "error: <what the client got>"."""
    try:
        routed = RouterClient(grpc_url, "grpc", timeout=600).route(
            "Write a very long story about a dragon.",
            {"stream": True, "sampling_parameters": {"max_tokens": 1000, "ignore_eos": True}}, on_piece=pieces.put)
        ended.append(f"finished: {routed.finish_reason}")
    except Exception as exc:  # the server stopping under it
        ended.append(f"error: {exc}")


def test_the_front_stops_when_triton_stops() -> None:
    """Triton killed from outside: serve.py stops the front too, and says it failed."""
    port, openai_port = free_port(), free_port()
    server = SimpleNamespace(http_port=port, proc=None)
    proc = _serve(port, openai_port)
    try:
        _wait_for_line(_lines(proc.stdout), "ready:", READY_WITHIN_S)
        assert len(front_processes(openai_port)) == 1
        triton = [pid for pid, args in server_processes(server).items() if args[0].endswith("tritonserver")]
        assert len(triton) == 1
        os.kill(triton[0], signal.SIGKILL)
        assert proc.wait(timeout=STOP_WITHIN_S) != 0
        assert front_processes(openai_port) == [] and server_processes(server) == {}
    finally:
        if proc.poll() is None or server_processes(server) or front_processes(openai_port):
            _kill_all(proc, server, openai_port)


def test_the_run_command_brings_a_dead_router_back() -> None:
    """The router's own stub killed: Triton still calls it ready and nothing inside it restarts it;
    the run command reloads it, and the router answers again in the same tritonserver."""
    from model_router.serving.stubs import stub_pids

    port = free_port()
    server = SimpleNamespace(http_port=port, proc=None)
    proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "scripts" / "serve.py"), "--http-port", str(port),
                             "--grpc-port", str(free_port()), "--metrics-port", str(free_port()), "--no-openai",
                             "--load", "query_classifier", "router"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _wait_for_line(_lines(proc.stdout), "ready:", READY_WITHIN_S)
        (triton,) = [pid for pid, args in server_processes(server).items() if args[0].endswith("tritonserver")]
        client = RouterClient(f"127.0.0.1:{port}")
        (dead,) = stub_pids(triton)["router"]
        os.kill(dead, signal.SIGKILL)
        assert wait_for(lambda: not is_alive(dead), 10)
        assert client.is_ready("router"), "Triton noticed the dead router: no watchdog is needed"
        assert wait_for(lambda: stub_pids(triton).get("router", [dead]) != [dead], 60), "the router was not reloaded"

        def ready() -> bool:
            try:
                return client.deep_health()["ready"]
            except InferenceServerException:  # the dead instance, until the new one takes over
                return False

        assert wait_for(ready, 60), "the router does not answer again"
        assert [p for p, args in server_processes(server).items() if args[0].endswith("tritonserver")] == [triton]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(STOP_WITHIN_S)
        if server_processes(server):
            _kill_all(proc, server)


def test_the_run_commands_api_answers_the_official_clients_of_every_api() -> None:
    """Responses (openai), Messages (anthropic) and embeddings, unmodified SDKs against the run command's front."""
    import anthropic
    import openai

    port, openai_port = free_port(), free_port()
    server = SimpleNamespace(http_port=port, proc=None)
    proc = _serve(port, openai_port, load=None)
    try:
        _wait_for_line(_lines(proc.stdout), "ready:", READY_WITHIN_S)
        url = f"http://127.0.0.1:{openai_port}"
        sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=300)
        answer = sdk.responses.create(model="auto", input="What is the capital of France?", max_output_tokens=24,
                                      temperature=0)
        assert answer.output_text.strip() and answer.usage.output_tokens > 0
        message = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0, timeout=300).messages.create(
            model="auto", max_tokens=24, messages=[{"role": "user", "content": "Name a river."}])
        assert message.content[0].text.strip() and message.usage.output_tokens > 0
        vectors = sdk.embeddings.create(model="auto", input=["a river", "a stream of water", "a tax form"]).data
        near, far = (sum(a * b for a, b in zip(vectors[0].embedding, v.embedding)) for v in vectors[1:])
        assert len(vectors[0].embedding) == 384 and near > far
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_WITHIN_S) == 0
    finally:
        if proc.poll() is None or server_processes(server) or front_processes(openai_port):
            _kill_all(proc, server, openai_port)
