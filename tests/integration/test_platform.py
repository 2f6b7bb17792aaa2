"""The platform on a real tritonserver: generation (HTTP, gRPC, streaming), model control, bad input."""
from __future__ import annotations

import pytest

from client import RouterClient
from client.api import InferenceServerException

from .conftest import LLM
from .observe import UNLOAD_WITHIN_S, model_states, wait_for

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


def test_unload_and_load_change_state(http: RouterClient) -> None:
    http.unload(LLM)
    try:
        # Unloading returns before the model is gone; it goes once its requests are done.
        assert wait_for(lambda: model_states(http).get(LLM) == "UNAVAILABLE", UNLOAD_WITHIN_S), model_states(http)
        assert not http.is_ready(LLM)
        with pytest.raises(InferenceServerException, match=f"Request for unknown model: '{LLM}' has no available versions"):
            http.generate(LLM, QUESTION, GREEDY)
    finally:
        http.load(LLM)  # the session server keeps its LLM loaded for the modules after this one
    assert http.is_ready(LLM)
    assert "Paris" in http.generate(LLM, QUESTION, GREEDY)
