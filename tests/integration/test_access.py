"""Model control behind a key (Triton's restricted API): refused without it, the router has it."""
from __future__ import annotations

import subprocess
import sys
from typing import Iterator

import pytest

from client import RouterClient
from client.api import InferenceServerException
from launcher import TritonServer
from model_router import REPO_ROOT

from .conftest import LLM, start_server, stop_server
from .observe import HOLDING, UNLOAD_WITHIN_S, model_states, ready_models, wait_for

pytestmark = pytest.mark.integration
KEY = "test-admin-key"
HTTP_REFUSED = r"\[403\] This API is restricted, expecting header 'admin-key'"
# Triton's gRPC frontend reads a restricted protocol's key from header triton-grpc-protocol-<name>.
GRPC_HEADER = "triton-grpc-protocol-admin-key"
GRPC_REFUSED = rf"This protocol is restricted, expecting header '{GRPC_HEADER}'"


@pytest.fixture(scope="module")
def server() -> Iterator[TritonServer]:
    srv = start_server(["query_classifier", "router"], admin_key=KEY)
    yield srv
    stop_server(srv)


def test_model_control_without_the_key_is_refused(server: TritonServer) -> None:
    admin = RouterClient(server.http_url, headers={"admin-key": KEY})
    before = model_states(admin)
    anonymous = RouterClient(server.http_url)
    with pytest.raises(InferenceServerException, match=HTTP_REFUSED):
        anonymous.load(LLM)
    with pytest.raises(InferenceServerException, match=HTTP_REFUSED):
        anonymous.models()  # the repository index is model control too
    with pytest.raises(InferenceServerException, match=HTTP_REFUSED):
        RouterClient(server.http_url, headers={"admin-key": "wrong"}).load(LLM)
    with pytest.raises(InferenceServerException, match=GRPC_REFUSED):
        RouterClient(server.grpc_url, "grpc").unload("router")
    with pytest.raises(InferenceServerException, match=GRPC_REFUSED):
        RouterClient(server.grpc_url, "grpc", headers={GRPC_HEADER: "wrong"}).unload("router")
    # Refused means nothing happened; inference and health stay open.
    assert model_states(admin) == before
    assert anonymous.live() and anonymous.is_ready("router")
    assert anonymous.is_ready(LLM) == (before[LLM] == "READY")


def test_the_router_loads_with_its_key_and_an_admin_controls_models(server: TritonServer) -> None:
    admin = RouterClient(server.http_url, headers={"admin-key": KEY})
    if model_states(admin)[LLM] in HOLDING:
        admin.unload(LLM)
        assert wait_for(lambda: model_states(admin)[LLM] not in HOLDING, UNLOAD_WITHIN_S)
    # Inference is open, and the router loads what it needs with the key it was given.
    text, decision = RouterClient(server.grpc_url, "grpc").route(
        "What is the capital of France?", {"sampling_parameters": {"max_tokens": 16, "temperature": 0}})
    assert "Paris" in text and decision["model"] == LLM and decision["load_ms"] > 0
    # (tmr_metrics: the router loaded it too, with the key, for its metrics)
    assert ready_models(admin) == {"query_classifier", "router", "tmr_metrics", LLM}
    # With the key, over HTTP and over gRPC (the header Triton's gRPC frontend reads), model control works.
    admin.unload(LLM)
    assert wait_for(lambda: model_states(admin)[LLM] == "UNAVAILABLE", UNLOAD_WITHIN_S), model_states(admin)
    RouterClient(server.grpc_url, "grpc", headers={GRPC_HEADER: KEY}).load(LLM)
    assert ready_models(admin) == {"query_classifier", "router", "tmr_metrics", LLM}
    admin.unload(LLM)
    assert wait_for(lambda: ready_models(admin) == {"query_classifier", "router", "tmr_metrics"}, UNLOAD_WITHIN_S)


def test_tmr_cli_with_the_key_lists_models(server: TritonServer) -> None:
    """README (Access): `tmr --key SECRET load MODEL` for people."""
    out = subprocess.run([sys.executable, "-m", "client", "--url", server.grpc_url, "--key", KEY, "models"],
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert out.returncode == 0 and "router" in out.stdout, out.stderr
