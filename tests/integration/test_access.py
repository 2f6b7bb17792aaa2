"""Model control behind a key (Triton's restricted API): refused without it, the router has it."""
from __future__ import annotations

import pytest

from client import RouterClient
from client.api import InferenceServerException

from .conftest import start_server, stop_server

pytestmark = pytest.mark.integration
KEY = "test-admin-key"


def test_model_control_needs_the_key_and_the_router_uses_it() -> None:
    srv = start_server(["query_classifier", "router"], admin_key=KEY)
    try:
        anonymous = RouterClient(srv.http_url)
        with pytest.raises(InferenceServerException, match="(?i)restricted|admin-key|unauthorized|denied"):
            anonymous.load("smollm2_135m_instruct")
        with pytest.raises(InferenceServerException):
            RouterClient(srv.grpc_url, "grpc").unload("router")
        with pytest.raises(InferenceServerException):
            RouterClient(srv.http_url, headers={"admin-key": "wrong"}).load("smollm2_135m_instruct")
        assert not anonymous.is_ready("smollm2_135m_instruct")
        # Inference is open, and the router loads what it needs with the key it was given.
        text, decision = RouterClient(srv.grpc_url, "grpc").route(
            "What is the capital of France?", {"sampling_parameters": {"max_tokens": 16, "temperature": 0}})
        assert "Paris" in text and decision["load_ms"] > 0
        admin = RouterClient(srv.http_url, headers={"admin-key": KEY})
        admin.unload("smollm2_135m_instruct")
        assert {m["name"] for m in admin.models()} >= {"router", "query_classifier"}
    finally:
        stop_server(srv)
