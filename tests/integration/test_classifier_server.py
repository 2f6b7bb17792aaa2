"""The query_classifier model on a real tritonserver, over HTTP and gRPC."""
from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as httpclient

from client import RouterClient
from client.api import InferenceServerException

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def classifier_loaded(server):
    RouterClient(server.http_url).load("query_classifier")
    return server


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_classifies_through_triton(classifier_loaded, protocol: str) -> None:
    url = classifier_loaded.http_url if protocol == "http" else classifier_loaded.grpc_url
    c = RouterClient(url, protocol)
    r = c.classify("make my avatar read this")
    assert r["use_case"] == "avatar" and r["language"] == "en" and r["modality"] == "text"
    r = c.classify("ఈ ఫోటోలో ఏముంది?", ["image"])
    assert (r["use_case"], r["language"], r["modality"]) == ("multimodal", "te", "image")
    assert set(r["use_case_scores"]) == {"agent", "multimodal", "video", "stt", "tts", "avatar"}


def test_batched_request_and_typed_outputs(classifier_loaded) -> None:
    client = httpclient.InferenceServerClient(classifier_loaded.http_url)
    text = np.array([[b"read this aloud"], [b"transcribe this"]], dtype=np.object_)
    att = np.array([[b""], [b"audio"]], dtype=np.object_)
    inputs = [httpclient.InferInput("text", [2, 1], "BYTES"), httpclient.InferInput("attachments", [2, 1], "BYTES")]
    inputs[0].set_data_from_numpy(text)
    inputs[1].set_data_from_numpy(att)
    res = client.infer("query_classifier", inputs)
    assert [v.decode() for v in res.as_numpy("use_case").reshape(-1)] == ["tts", "stt"]
    assert res.as_numpy("confidence").shape == (2, 4) and res.as_numpy("use_case_scores").shape == (2, 6)


@pytest.mark.parametrize("text, attachments, words", [
    ("", [], "text: empty"),
    ("\u200b\u2060", [], r"text: empty \(only invisible characters: U\+200B, U\+2060\)"),
    ("x" * 8001, [], "text: 8001 characters exceeds the limit of 8000"),
    (b"\xff\xfe", [], "text: not valid UTF-8"),
    ("hello", ["pdf"], "attachments: unknown kind 'pdf'"),
])
def test_bad_input_is_a_clear_error_and_model_keeps_serving(classifier_loaded, text, attachments, words) -> None:
    c = RouterClient(classifier_loaded.http_url)
    with pytest.raises(InferenceServerException, match=words):
        c.classify(text, attachments)
    assert c.classify("What is 2 + 2?")["use_case"] == "agent"
