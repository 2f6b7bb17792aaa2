"""Bad input to the router: each a clear error naming the field, the server serving everyone after."""
from __future__ import annotations

import json
import queue

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from client import RouterClient
from client.api import InferenceServerException
from model_router.contract.request import MAX_ATTACHMENT_BYTES
from model_router.vocabulary import LANGUAGES, USE_CASES

pytestmark = pytest.mark.integration
# A request waits at most the router's max_wait_s (60 s, config.pbtxt) for a worker; an error comes at once then.
REPLY_WITHIN_S = 60 + 30


def _input(name: str, value: np.ndarray, dtype: str | None = None) -> grpcclient.InferInput:
    t = grpcclient.InferInput(name, list(value.shape), dtype or ("BYTES" if value.dtype == np.object_ else "FP32"))
    t.set_data_from_numpy(value)
    return t


def _b(*values: bytes | str) -> np.ndarray:
    return np.array([v.encode() if isinstance(v, str) else v for v in values], dtype=np.object_)


def send(url: str, inputs: list, timeout_s: float = REPLY_WITHIN_S) -> str:
    """One streamed request to the router; returns the error the server sent ("" when it answered).

    Only the server's own refusal counts: anything else (a client-side error, no answer in time)
    is raised, so that it fails the test instead of passing for a clear error."""
    results: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(url)
    client.start_stream(callback=lambda result, error: results.put(error))
    try:
        client.async_stream_infer("router", inputs, enable_empty_final_response=True)
        error = results.get(timeout=timeout_s)
        return "" if error is None else str(error)
    finally:
        client.stop_stream()
        client.close()


def options(**kw) -> grpcclient.InferInput:
    return _input("options", _b(json.dumps(kw)))


TEXT = _input("text", _b("What is the capital of France?"))
EMPTY = "text: empty, and no image, audio or video was given"
INVISIBLE = "\u200b\u200c\u200d\ufeff\u2060"  # zero-width space, non-joiner, joiner, BOM, word joiner
CASES = [
    ("empty text", [_input("text", _b(""))], EMPTY),
    ("blank text", [_input("text", _b("   \n"))], EMPTY),
    ("zero-width characters only", [_input("text", _b(INVISIBLE))],
     "text: empty (only invisible characters: U+200B, U+200C, U+200D, U+2060, U+FEFF), and no image"),
    ("zero-width characters and whitespace", [_input("text", _b(" \u200b\n\ufeff\t"))],
     "text: empty (only invisible characters: U+200B, U+FEFF), and no image"),
    ("oversized text", [_input("text", _b("a" * 8001))], "text: 8001 characters exceeds the limit of 8000"),
    ("invalid UTF-8", [_input("text", _b(b"\xff\xfe\xfd"))], "text: not valid UTF-8 (bad byte at position 0)"),
    ("wrong dtype", [_input("text", np.array([1.0], dtype=np.float32))],
     "inference input 'text' data-type is 'FP32', but model 'router' expects 'BYTES'"),
    ("wrong shape", [_input("text", _b("a", "b"))],
     "unexpected shape for input 'text' for model 'router'. Expected [1], got [2]"),
    ("missing text", [options()], EMPTY),
    ("malformed options", [TEXT, _input("options", _b("{not json"))], "options: not valid JSON"),
    ("options not an object", [TEXT, _input("options", _b("[1, 2]"))], "options: expected a JSON object, got list"),
    ("unknown option", [TEXT, options(colour="red")], "options.colour: unknown option. Available"),
    ("unknown use case", [TEXT, options(use_case="chat")], "options.use_case: 'chat' unknown. Available"),
    ("unknown language", [TEXT, options(language="fr")], "options.language: 'fr' unknown. Available"),
    ("negative max_tokens", [TEXT, options(sampling_parameters={"max_tokens": -5})],
     "options.sampling_parameters.max_tokens: -5 must be >= 1"),
    ("huge max_tokens", [TEXT, options(sampling_parameters={"max_tokens": 10**9})],
     "options.sampling_parameters.max_tokens: 1000000000 exceeds the largest limit on offer"),
    ("unknown sampling parameter", [TEXT, options(sampling_parameters={"beam": 4})],
     "options.sampling_parameters.beam: unknown parameter. Available"),
    ("bad stream flag", [TEXT, options(stream="yes")], "options.stream: expected true or false, got 'yes'"),
    ("bad max latency", [TEXT, options(max_latency_ms=0)], "options.max_latency_ms: 0 is out of range"),
    ("unknown model hint", [TEXT, options(model="gpt-9")], "options.model: 'gpt-9' unknown. Available"),
    ("path-like model", [TEXT, options(model="../router")], "options.model: '../router' is not a model name"),
    ("pinned model as target", [TEXT, options(model="router")], "options.model: 'router' unknown"),
    ("oversized image", [TEXT, _input("image", _b(b"\x89PNG" + b"\0" * MAX_ATTACHMENT_BYTES["image"]))],
     "image: 10485764 bytes exceeds the limit of 10485760 bytes"),
    ("unknown input", [TEXT, _input("pdf", _b("x"))], "unexpected inference input 'pdf' for model 'router'"),
]
# Text that looks odd but is text: each gets an answer and a routing decision.
ODD_TEXT = {
    "emoji only": "😀🎉🙏",
    "ZWJ emoji sequence": "👨\u200d👩\u200d👧\u200d👦",
    "mixed Devanagari and Latin": "मुझे Python में एक function लिखना है",
}
ANSWER = {"max_tokens": 8, "temperature": 0}


@pytest.mark.parametrize("name, inputs, words", CASES, ids=[c[0].replace(" ", "-") for c in CASES])
def test_bad_input_is_a_clear_error(router, name: str, inputs: list, words: str) -> None:
    error = send(router.grpc_url, inputs)
    assert error, f"{name}: accepted"
    assert words in error, error


def test_server_keeps_serving_after_bad_input(router) -> None:
    for name, inputs, words in CASES:  # all of them, here, whatever order the tests above ran in
        assert words in send(router.grpc_url, inputs), name
    text, decision = RouterClient(router.grpc_url, "grpc").route(
        "What is the capital of France?", {"sampling_parameters": {"max_tokens": 16, "temperature": 0}})
    assert "Paris" in text and decision["model"] == "smollm2_135m_instruct"


def test_invisible_only_text_is_invalid_arg(router) -> None:
    """Over HTTP the error's code shows: INVALID_ARG is 400."""
    with pytest.raises(InferenceServerException, match=r"^\[400\] text: empty \(only invisible characters: U\+200B") as err:
        RouterClient(router.http_url).route(INVISIBLE, {})
    assert err.value.status() == "400", err.value


@pytest.mark.parametrize("text", ODD_TEXT.values(), ids=ODD_TEXT.keys())
def test_emoji_and_mixed_script_text_gets_an_answer_and_a_decision(router, text: str) -> None:
    answer, decision = RouterClient(router.grpc_url, "grpc").route(text, {"sampling_parameters": ANSWER})
    assert answer.strip(), decision
    assert decision["use_case"] in USE_CASES and decision["language"] in LANGUAGES, decision
    assert decision["model"] == decision["candidates"][0]["model"] and decision["reason"], decision
