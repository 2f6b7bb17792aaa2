"""The platform on a real tritonserver: generation (HTTP, gRPC, streaming), model control, bad input."""
from __future__ import annotations

import time

import pytest

from client import RouterClient
from client.api import InferenceServerException

from .conftest import LLM

pytestmark = pytest.mark.integration
QUESTION = "What is the capital of France?"
GREEDY = {"max_tokens": 24, "temperature": 0}


def test_server_is_live_and_llm_ready(http: RouterClient) -> None:
    assert http.live() and http.ready()
    states = {m["name"]: m["state"] for m in http.models()}
    assert states[LLM] == "READY"


def test_generate_http_answers_paris(http: RouterClient) -> None:
    assert "Paris" in http.generate(LLM, QUESTION, GREEDY)


def test_generate_http_includes_prompt_unless_excluded(http: RouterClient) -> None:
    out = "".join(http.stream(LLM, QUESTION, GREEDY, exclude_input=False, stream=False))
    assert out.startswith(QUESTION) and "Paris" in out[len(QUESTION):]


def test_generate_grpc_streams_token_by_token(grpc: RouterClient) -> None:
    pieces = list(grpc.stream(LLM, QUESTION, GREEDY))
    assert len(pieces) > 3, pieces
    assert "Paris" in "".join(pieces)


def test_http_generate_stream(http: RouterClient) -> None:
    pieces = list(http.stream(LLM, QUESTION, GREEDY, stream=True))
    assert len(pieces) > 3 and "Paris" in "".join(pieces)


def test_max_tokens_and_stop_are_honoured(http: RouterClient) -> None:
    short = http.generate(LLM, "Count from one to twenty in words.", {"max_tokens": 3, "temperature": 0})
    assert 0 < len(short.split()) <= 3
    stopped = http.generate(LLM, QUESTION, {"max_tokens": 24, "temperature": 0, "stop": ["Paris"]})
    assert "Paris" not in stopped and stopped


def test_seed_makes_sampling_repeatable(http: RouterClient) -> None:
    params = {"max_tokens": 12, "temperature": 1.0, "top_p": 0.95, "seed": 7}
    assert http.generate(LLM, "Tell me a word.", params) == http.generate(LLM, "Tell me a word.", params)


def test_bad_sampling_parameter_is_a_clear_error_and_server_keeps_serving(http: RouterClient, grpc: RouterClient) -> None:
    with pytest.raises(InferenceServerException, match=r"sampling_parameters\.max_tokenz: unknown parameter"):
        http.generate(LLM, QUESTION, {"max_tokenz": 5})
    with pytest.raises(InferenceServerException, match=r"sampling_parameters\.temperature: .* out of range"):
        list(grpc.stream(LLM, QUESTION, {"temperature": 9}))
    assert "Paris" in http.generate(LLM, QUESTION, GREEDY)


def _wait_state(client: RouterClient, model: str, want: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = {m["name"]: m["state"] for m in client.models()}.get(model, "")
        if state == want:
            return state
        time.sleep(0.2)
    return state


def test_unload_and_load_change_state(http: RouterClient) -> None:
    http.unload(LLM)
    assert _wait_state(http, LLM, "UNAVAILABLE") == "UNAVAILABLE"
    assert not http.is_ready(LLM)
    with pytest.raises(InferenceServerException):
        http.generate(LLM, QUESTION, GREEDY)
    http.load(LLM)
    assert http.is_ready(LLM)
    assert "Paris" in http.generate(LLM, QUESTION, GREEDY)
