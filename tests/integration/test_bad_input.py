"""Bad input to the router: each a clear error naming the field, the server serving everyone after."""
from __future__ import annotations

import json
import queue

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from client import RouterClient
from model_router.request import MAX_ATTACHMENT_BYTES

pytestmark = pytest.mark.integration


def _input(name: str, value: np.ndarray, dtype: str | None = None) -> grpcclient.InferInput:
    t = grpcclient.InferInput(name, list(value.shape), dtype or ("BYTES" if value.dtype == np.object_ else "FP32"))
    t.set_data_from_numpy(value)
    return t


def _b(*values: bytes | str) -> np.ndarray:
    return np.array([v.encode() if isinstance(v, str) else v for v in values], dtype=np.object_)


def send(url: str, inputs: list) -> str:
    """One streamed request to the router; returns the error message ("" when it succeeded)."""
    results: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(url)
    client.start_stream(callback=lambda result, error: results.put(error))
    try:
        client.async_stream_infer("router", inputs, enable_empty_final_response=True)
        error = results.get(timeout=60)
        return "" if error is None else str(error)
    except Exception as exc:  # rejected before it was queued
        return str(exc)
    finally:
        client.stop_stream()
        client.close()


def options(**kw) -> grpcclient.InferInput:
    return _input("options", _b(json.dumps(kw)))


TEXT = _input("text", _b("What is the capital of France?"))
CASES = [
    ("empty text", [_input("text", _b(""))], "text: empty"),
    ("blank text", [_input("text", _b("   \n"))], "text: empty"),
    ("oversized text", [_input("text", _b("a" * 8001))], "text: 8001 characters exceeds the limit of 8000"),
    ("invalid UTF-8", [_input("text", _b(b"\xff\xfe\xfd"))], "text: not valid UTF-8"),
    ("wrong dtype", [_input("text", np.array([1.0], dtype=np.float32))], "text"),
    ("wrong shape", [_input("text", _b("a", "b"))], "text"),
    ("missing text", [options()], "text"),
    ("malformed options", [TEXT, _input("options", _b("{not json"))], "options: not valid JSON"),
    ("options not an object", [TEXT, _input("options", _b("[1, 2]"))], "options: expected a JSON object"),
    ("unknown option", [TEXT, options(colour="red")], "options.colour: unknown option. Available"),
    ("unknown use case", [TEXT, options(use_case="chat")], "options.use_case: 'chat' unknown. Available"),
    ("unknown language", [TEXT, options(language="fr")], "options.language: 'fr' unknown. Available"),
    ("negative max_tokens", [TEXT, options(sampling_parameters={"max_tokens": -5})], "max_tokens: -5 is out of range"),
    ("huge max_tokens", [TEXT, options(sampling_parameters={"max_tokens": 10**9})], "max_tokens: 1000000000 is out of range"),
    ("unknown sampling parameter", [TEXT, options(sampling_parameters={"beam": 4})], "sampling_parameters.beam: unknown"),
    ("bad stream flag", [TEXT, options(stream="yes")], "options.stream: expected true or false"),
    ("bad max latency", [TEXT, options(max_latency_ms=0)], "options.max_latency_ms: 0 is out of range"),
    ("unknown model hint", [TEXT, options(model="gpt-9")], "options.model: 'gpt-9' unknown. Available"),
    ("path-like model", [TEXT, options(model="../router")], "options.model: '../router' is not a model name"),
    ("pinned model as target", [TEXT, options(model="router")], "options.model: 'router' unknown"),
    ("oversized image", [TEXT, _input("image", _b(b"\x89PNG" + b"\0" * MAX_ATTACHMENT_BYTES["image"]))],
     "image: 10485764 bytes exceeds the limit of 10485760 bytes"),
    ("unknown input", [TEXT, _input("pdf", _b("x"))], "pdf"),
]


@pytest.fixture(scope="module")
def router(server):
    for model in ("query_classifier", "router"):
        RouterClient(server.http_url).load(model)
    return server


@pytest.mark.parametrize("name, inputs, words", CASES, ids=[c[0].replace(" ", "-") for c in CASES])
def test_bad_input_is_a_clear_error(router, name: str, inputs: list, words: str) -> None:
    error = send(router.grpc_url, inputs)
    assert error, f"{name}: accepted"
    assert words in error, error


def test_server_keeps_serving_after_bad_input(router) -> None:
    text, decision = RouterClient(router.grpc_url, "grpc").route(
        "What is the capital of France?", {"sampling_parameters": {"max_tokens": 16, "temperature": 0}})
    assert "Paris" in text and decision["model"] == "smollm2_135m_instruct"
