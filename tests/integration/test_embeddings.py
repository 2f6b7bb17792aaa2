"""POST /v1/embeddings on the real server through the official openai SDK: the router loads the e5 model
on demand (its own Triton model) and answers its vectors, which are the semantic cache's."""
from __future__ import annotations

import base64
import json
import urllib.request
from typing import Iterator

import numpy as np
import openai
import pytest

from launcher import FrontProcess, TritonServer
from model_router.cache.semantic import e5_embedder

from .observe import index_states
from .services import KEY, error_of, start_front, stop_front

pytestmark = pytest.mark.integration
E5 = "multilingual_e5_small"
PASSWORD, PARAPHRASE = "How do I reset my password?", "I forgot my password, how can I change it?"
RIVER = "The river flooded the village last spring."


@pytest.fixture(scope="module")
def front(router: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontProcess]:
    proc = start_front(router, tmp_path_factory.mktemp("embeddings"))
    yield proc
    stop_front(proc)


@pytest.fixture(scope="module")
def sdk(front: FrontProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{front.url}/v1", api_key=KEY, max_retries=0, timeout=300)


def vectors(answer) -> np.ndarray:
    return np.array([d.embedding for d in answer.data], dtype=np.float32)


def test_the_sdk_gets_unit_vectors_from_the_model_loaded_on_demand(sdk: openai.OpenAI, router: TritonServer) -> None:
    assert index_states(router).get(E5) != "READY"  # nothing has asked for it yet
    raw = sdk.embeddings.with_raw_response.create(model="auto", input=[PASSWORD, PARAPHRASE, RIVER])
    got = raw.parse()
    assert index_states(router).get(E5) == "READY"  # the router loaded it for this request
    routing = json.loads(raw.headers["x-tmr-routing"])
    assert routing["model"] == E5 == got.model and routing["use_case"] == "embedding" and routing["load_ms"] > 0
    v = vectors(got)
    assert [d.index for d in got.data] == [0, 1, 2] and v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2])  # the paraphrase is nearer than the unrelated sentence
    assert got.usage.prompt_tokens > 0 and got.usage.total_tokens == got.usage.prompt_tokens
    assert E5 in [m.id for m in sdk.models.list()]


def test_a_batch_is_answered_in_order_each_as_alone_and_as_the_cache_embeds(sdk: openai.OpenAI) -> None:
    texts = [RIVER, "नमस्ते, आप कैसे हैं?", PASSWORD, "Quelle heure est-il ?", PARAPHRASE]
    batch = vectors(sdk.embeddings.create(model=E5, input=texts))
    alone = np.concatenate([vectors(sdk.embeddings.create(model=E5, input=t)) for t in texts])
    assert batch.shape == (5, 384) and np.allclose(batch, alone, atol=1e-5)
    cache = e5_embedder()  # the semantic cache's embedder, in this process
    assert np.allclose(batch, [cache(t) for t in texts], atol=1e-5)


def test_float_and_base64_agree_and_dimensions_cut_to_unit_length(sdk: openai.OpenAI, front: FrontProcess) -> None:
    packed = vectors(sdk.embeddings.create(model="auto", input=RIVER))  # the SDK's default: base64, decoded
    floats = vectors(sdk.embeddings.create(model="auto", input=RIVER, encoding_format="float"))
    assert np.allclose(packed, floats, atol=1e-6)
    short = vectors(sdk.embeddings.create(model="auto", input=RIVER, dimensions=64, encoding_format="float"))[0]
    assert short.shape == (64,) and abs(float(np.linalg.norm(short)) - 1) < 1e-5
    # Plain HTTP, as a client without the SDK sends it: base64 is the little-endian float32 bytes.
    body = json.dumps({"model": "auto", "input": [RIVER], "encoding_format": "base64"}).encode()
    request = urllib.request.Request(f"{front.url}/v1/embeddings", body, {
        "Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        raw = json.loads(response.read())
    assert np.allclose(np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), "<f4"), floats[0], atol=1e-6)


@pytest.mark.parametrize(("kwargs", "param", "status"), [
    ({"input": ""}, "input", 400),
    ({"input": []}, "input", 400),
    ({"input": [[101, 2023, 102]]}, "input", 400),
    ({"input": [RIVER, "word " * 600]}, "input[1]", 400),  # over 512 tokens: the model's own count
    ({"input": RIVER, "dimensions": 1000}, "dimensions", 400),
    ({"input": RIVER, "model": "text-embedding-3-small"}, "model", 404),
])
def test_bad_input_is_refused_naming_the_field(sdk: openai.OpenAI, kwargs: dict, param: str, status: int) -> None:
    err = error_of(sdk.embeddings.create, **{"model": "auto", **kwargs})
    assert err.status_code == status and err.body["param"] == param, err.body
    assert sdk.embeddings.create(model="auto", input=RIVER).data[0].index == 0  # and it serves on
