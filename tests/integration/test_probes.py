"""Kubernetes' probes against a router held full: the startup, readiness and liveness commands exactly
as `kubectl kustomize` renders them (deploy/kubernetes) pass within their timeoutSeconds while 64 long
streams keep every admission place taken and turn the rest away. The router answers its health report
ahead of admission; a probe that queued behind user traffic would fail here, pod after pod.

Admission is made small (TMR_WORKERS, TMR_MAX_QUEUED) so that saturation costs a few streams of the
CPU LLM rather than 48; what is saturated is seen from the clients (streams under way, others turned
away with "router overloaded"), not from the router's counters.

Readiness also means something: with the classifier unloaded through model control, the readiness
probe fails naming it while liveness passes, and passes again once the classifier is back."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
from typing import Iterator

import pytest

from client import RouterClient
from client.api import InferenceServerException
from launcher import TritonServer
from model_router import REPO_ROOT

from .conftest import LLM, start_server, stop_server
from .observe import _post, index_states, wait_for

pytestmark = pytest.mark.integration
STREAMS, WORKERS, QUEUED = 64, 2, 2
# Long enough to be generating still when the probes have run (each stream its own answer).
STORY = ("Write a very long story about a dragon who learns to sing.",
         {"stream": True, "model": LLM, "allow_fallback": False, "timeout_s": 600,
          "sampling_parameters": {"max_tokens": 256}})
DOCKERFILE = (REPO_ROOT / "deploy" / "Dockerfile").read_text()


def rendered_probes() -> dict[str, dict]:
    """{probe: its spec} of Triton's container, from `kubectl kustomize deploy/kubernetes/overlays/cpu`."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    spec = importlib.util.spec_from_file_location("kube_validate", REPO_ROOT / "deploy" / "kubernetes" / "validate.py")
    validate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(validate)
    (runtime,) = [d for d in validate.render(REPO_ROOT / "deploy" / "kubernetes" / "overlays" / "cpu")
                  if d["kind"] == "ServingRuntime"]
    (triton,) = [c for c in runtime["spec"]["containers"] if c["name"] == "kserve-container"]
    return {p: triton[p] for p in ("startupProbe", "readinessProbe", "livenessProbe")}


def local(command: list[str]) -> list[str]:
    """The probe's command with the image's path of its script read as this checkout's (the images
    copy deploy/healthcheck.py there); every argument after it as rendered."""
    copied = {dst: src for src, dst in re.findall(r"^COPY (\S+) (\S+)$", DOCKERFILE, re.M)}
    assert command[0] == "python3" and command[1] in copied
    return [sys.executable, str(REPO_ROOT / copied[command[1]]), *command[2:]]


@pytest.fixture(scope="module")
def server() -> Iterator[TritonServer]:
    srv = start_server(["query_classifier", "router", LLM],
                       env={"TMR_WORKERS": str(WORKERS), "TMR_MAX_QUEUED": str(QUEUED), "TMR_MAX_WAIT_S": "600"})
    yield srv
    stop_server(srv)


class Streams:
    """STREAMS stories through the router, each on a client of its own; what each client saw."""

    def __init__(self, server: TritonServer) -> None:
        self.server, self.lock = server, threading.Lock()
        self.started = threading.Semaphore(0)  # one release per stream that got its first piece
        self.overloaded = threading.Event()
        self.finished: list[str] = []  # "text" or the error of each stream that ended
        self.threads = [threading.Thread(target=self._one, daemon=True) for _ in range(STREAMS)]

    def _one(self) -> None:
        first = threading.Event()

        def piece(_: str) -> None:
            if not first.is_set():
                first.set()
                self.started.release()

        client = RouterClient(self.server.grpc_url, "grpc", timeout=900)
        try:
            client.route(STORY[0], STORY[1], on_piece=piece)
            outcome = "text"
        except InferenceServerException as exc:
            outcome = str(exc)
            if "overloaded" in outcome:
                self.overloaded.set()
        finally:
            client._client.close()  # an open connection would hold Triton's exit for its whole timeout
        with self.lock:
            self.finished.append(outcome)


def run_probe(name: str, probe: dict, host: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TMR_HEALTH_HOST": host}
    env.pop("TMR_HEALTH_TIMEOUT_S", None)  # the script's default, as in the image
    try:
        return subprocess.run(local(probe["exec"]["command"]), env=env, capture_output=True, text=True,
                              timeout=probe["timeoutSeconds"])  # the kubelet's limit: past it, the probe failed
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} took longer than its timeoutSeconds ({probe['timeoutSeconds']} s)")


def test_probes_pass_within_their_timeout_while_the_router_is_full(server: TritonServer) -> None:
    probes = rendered_probes()
    for name, probe in probes.items():  # idle: the probes pass, so a failure below is the load's doing
        out = run_probe(name, probe, server.http_url)
        assert out.returncode == 0, f"{name} failed on an idle server: {out.stderr}"
    streams = Streams(server)
    for t in streams.threads:
        t.start()
    # Full, as clients see it: every place that runs has a stream generating, and others turned away.
    for _ in range(WORKERS):
        assert streams.started.acquire(timeout=300), "the admitted streams never started generating"
    assert streams.overloaded.wait(300), "no stream was turned away: the router was never full"
    results = {name: run_probe(name, probe, server.http_url) for name, probe in probes.items()}
    # Still full after them: one more request is turned away at once (were a place free, its one token
    # would come back instead).
    one_more = RouterClient(server.grpc_url, "grpc", timeout=120)
    try:
        with pytest.raises(InferenceServerException, match="overloaded"):
            one_more.route("Hi", {"model": LLM, "allow_fallback": False, "sampling_parameters": {"max_tokens": 1}})
    finally:
        one_more._client.close()
    for name, out in results.items():
        assert out.returncode == 0, f"{name} failed with the router full: {out.stderr.strip()}"
    for t in streams.threads:  # the admitted streams run to their end; the server then stops cleanly
        t.join(900)
    assert streams.finished.count("text") == WORKERS + QUEUED, streams.finished
    # The LLM let go while the test still watches, as Triton's index tells it (a stop would otherwise
    # spend its whole exit timeout on it).
    _post(server, f"models/{LLM}/unload")
    assert wait_for(lambda: index_states(server).get(LLM) not in ("READY", "UNLOADING"), 120), index_states(server)


def deep_report(server: TritonServer) -> dict:
    """The router's deep health report, over HTTP as the probe script asks it."""
    client = RouterClient(server.http_url)
    try:
        return client.deep_health()
    finally:
        client.close()


def test_readiness_follows_the_classifier_unloaded_and_loaded_again(server: TritonServer) -> None:
    """The router cannot route without its classifier: unloaded through model control (Triton's index
    says so), the deep report and the rendered readiness probe say not ready, naming it, while liveness
    passes (nothing a restart would mend); loaded again, ready again."""
    probes, classifier = rendered_probes(), "query_classifier"
    assert deep_report(server)["ready"] and run_probe("readinessProbe", probes["readinessProbe"],
                                                      server.http_url).returncode == 0
    _post(server, f"models/{classifier}/unload")
    try:
        assert wait_for(lambda: index_states(server).get(classifier) not in ("READY", "UNLOADING"), 120)
        # The router follows Triton's states once a second; it says "unloading" (not ready already) before
        # "unloaded": wait for the final status, which the probe then names.
        assert wait_for(lambda: deep_report(server)["models"][classifier]["status"] == "unloaded", 30), \
            deep_report(server)["models"][classifier]
        report = deep_report(server)
        assert not report["ready"] and not report["models"][classifier]["healthy"], report
        ready = run_probe("readinessProbe", probes["readinessProbe"], server.http_url)
        assert ready.returncode == 1 and f"{classifier} unloaded" in ready.stderr, ready.stderr
        live = run_probe("livenessProbe", probes["livenessProbe"], server.http_url)
        assert live.returncode == 0, live.stderr
    finally:
        _post(server, f"models/{classifier}/load")
    assert wait_for(lambda: deep_report(server)["ready"], 120), "the router did not say ready again"
    assert run_probe("readinessProbe", probes["readinessProbe"], server.http_url).returncode == 0
