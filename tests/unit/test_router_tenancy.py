"""A client's key in the router (RouteOptions: tenant, allowed_models, allowed_use_cases, prefer_ceiling,
cache_namespace, traceparent): what it may be routed to, what is refused (403 at the front), what the
decision says, and whose cached answers it may be served. The real Router, ResponseCache (in process and
on a real redis-server) and DecisionLog; plain functions stand in for the classifier and the models."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from model_router.cache import ResponseCache, key_of, scope_of
from model_router.contract.classifier import Classification
from model_router.contract.embedding import EmbedOutput
from model_router.contract.errors import ErrorKind, Forbidden, WireError
from model_router.contract.request import RouteOptions, parse_options
from model_router.contract.router import RouterRequest
from model_router.contract.tenancy import ANSWER_BOUNDS
from model_router.errors import InputError
from model_router.routing.cached import Revision, RouterCache, key_fields
from model_router.routing.decision_log import DecisionLog, JsonlStore
from model_router.routing.router import Router
from openai_front.errors import from_wire

from ..integration.services import RedisServer
from .test_router import FALLBACK, PRIMARY, QWEN_1_5B
from .test_router_cache import Harness

E5 = "multilingual_e5_small"
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def classified(complexity: str = "low", use_case: str = "agent"):
    def classify(text: str, kinds: tuple[str, ...]) -> Classification:
        return Classification(use_case, "en", complexity, "text", dict.fromkeys(
            ("use_case", "language", "complexity", "modality"), 0.9), {use_case: 0.9})
    return classify


def served(h: Harness, options: dict | None = None, text: str = "capital of France?"):
    return h.ask(dict(options or {}), text)[-1]


def refused(h: Harness, options: dict, text: str = "capital of France?") -> Forbidden:
    with pytest.raises(Forbidden) as caught:
        h.ask(dict(options), text)
    return caught.value


# -- models: auto and named --------------------------------------------------------------------------
def test_auto_routes_only_among_the_allowed_models_and_says_why_the_others_were_skipped() -> None:
    h = Harness()
    assert served(h, {"prefer": "quality"}).decision["model"] == QWEN_1_5B  # the key-less choice
    kept = served(h, {"prefer": "quality", "allowed_models": [PRIMARY], "tenant": "acme"})
    assert kept.decision["model"] == PRIMARY and h.generated == [QWEN_1_5B, PRIMARY]
    skipped = {s["model"]: s["why"] for s in kept.decision["skipped"]}
    assert skipped[QWEN_1_5B] == skipped[FALLBACK] == "not allowed for this key"
    assert [c["model"] for c in kept.decision["candidates"]] == [PRIMARY]


def test_a_named_model_outside_the_allow_list_is_forbidden_listing_the_allowed_ones() -> None:
    h = Harness()
    error = refused(h, {"model": QWEN_1_5B, "allowed_models": [PRIMARY, FALLBACK]})
    assert error.field == "options.model" and QWEN_1_5B in str(error)
    assert f"Allowed: {sorted([PRIMARY, FALLBACK])}" in str(error)
    assert h.generated == [] and not h.loader.is_loaded(QWEN_1_5B)  # refused before anything was loaded
    assert served(h, {"model": FALLBACK, "allowed_models": [PRIMARY, FALLBACK]}).decision["model"] == FALLBACK


def test_a_key_none_of_whose_models_serves_the_use_case_is_forbidden() -> None:
    error = refused(Harness(), {"allowed_models": ["tts_espeak"]})
    assert error.field == "options.model" and "no model this key may use serves use case 'agent'" in str(error)


# -- use cases ---------------------------------------------------------------------------------------
def test_a_classified_use_case_outside_the_allowed_ones_is_forbidden() -> None:
    h = Harness()
    h.router.classify = classified(use_case="tts")
    error = refused(h, {"allowed_use_cases": ["agent"]}, "say hello")
    assert error.field == "options.use_case" and "'tts'" in str(error) and "Allowed: ['agent']" in str(error)
    assert h.generated == []
    h.router.classify = classified(use_case="agent")
    assert served(h, {"allowed_use_cases": ["agent"]}).decision["use_case"] == "agent"


def test_a_use_case_set_in_the_options_obeys_the_allowed_ones_too() -> None:
    error = refused(Harness(), {"use_case": "tts", "allowed_use_cases": ["agent", "stt"]})
    assert error.field == "options.use_case" and "Allowed: ['agent', 'stt']" in str(error)


# -- the prefer ceiling ------------------------------------------------------------------------------
def first(options: dict, complexity: str = "low") -> dict:
    """The decision of a fresh router (nothing loaded yet: the loaded state decides nothing)."""
    h = Harness()
    h.router.classify = classified(complexity)
    return served(h, options).decision


def test_prefer_above_the_ceiling_is_lowered_and_the_decision_says_so() -> None:
    assert first({"prefer": "quality"})["model"] == QWEN_1_5B  # what the ceiling must change
    cheap = first({"prefer": "cost"})["model"]
    lowered = first({"prefer": "quality", "prefer_ceiling": "cost"})
    assert lowered["model"] == cheap != QWEN_1_5B and "options.prefer quality lowered to cost" in lowered["reason"]
    below = first({"prefer": "cost", "prefer_ceiling": "balanced"})
    assert below["model"] == cheap and "lowered" not in below["reason"]


def test_the_ceiling_caps_the_quality_that_high_complexity_brings() -> None:
    assert first({}, "high")["model"] == QWEN_1_5B  # high complexity: the strongest
    capped = first({"prefer_ceiling": "cost"}, "high")
    assert capped["model"] != QWEN_1_5B and capped["decided_by"] == "cost (prefer cost)"


# -- embeddings --------------------------------------------------------------------------------------
def embedding_router() -> tuple[Router, list[str]]:
    h = Harness()
    calls: list[str] = []

    def invoke(spec, inputs, stream, timeout_s, outputs, cancelled=None, gone=None):
        calls.append(spec.name)
        yield EmbedOutput(np.ones((1, 4), dtype=np.float32) / 2, (3,)).encode()

    h.router.invoke = invoke
    return h.router, calls


def embed(router: Router, **options) -> dict:
    return list(router.route(RouterRequest.of("", {"embed": {"input": ["hello"]}, **options})))[-1].decision


def test_embeddings_obey_the_allowed_models() -> None:
    router, calls = embedding_router()
    assert embed(router, allowed_models=[E5, PRIMARY], tenant="acme")["tenant"] == "acme"
    with pytest.raises(Forbidden, match="no embedding model is allowed for this key") as caught:
        embed(router, allowed_models=[PRIMARY])
    assert caught.value.field == "options.model"
    with pytest.raises(Forbidden, match=f"'{E5}' is not allowed for this key") as caught:
        embed(router, model=E5, allowed_models=[PRIMARY])
    assert caught.value.field == "options.model" and calls == [E5]


# -- the decision and its log ------------------------------------------------------------------------
def test_the_decision_and_its_log_name_the_tenant(tmp_path: Path) -> None:
    h = Harness()
    h.router.decisions = DecisionLog(JsonlStore(tmp_path / "decisions.jsonl"))
    assert served(h, {"tenant": "acme", "prefer": "quality", "prefer_ceiling": "balanced"}).decision["tenant"] == "acme"
    assert served(h, {}, "another question").decision["tenant"] is None
    logged = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert [(r["tenant"], r["prefer"]) for r in logged] == [("acme", "balanced"), (None, "balanced")]


# -- the cache: one namespace per tenant, unless shared on purpose ------------------------------------
@pytest.fixture(params=["memory", "redis"])
def store(request, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield "memory"
        return
    server = RedisServer(tmp_path)
    yield server.url
    server.stop()


def cached_harness(url: str, mode: str = "exact", embed=None) -> Harness:
    h = Harness(mode, embed=embed)
    h.store = ResponseCache(url, semantic_threshold=0.965 if embed else None, embed=embed)
    h.store.clear()
    h.router.cache = RouterCache(h.store, "cpu", Revision(h.registry, "cpu"), mode)
    return h


def test_one_tenants_cached_answers_never_reach_another_unless_they_share_a_namespace(store: str) -> None:
    h = cached_harness(store)
    assert served(h, {"tenant": "acme"}).decision["cache"] == "miss"
    again = served(h, {"tenant": "acme"})
    assert again.decision["cache"] == "hit" and again.decision["tenant"] == "acme"
    assert served(h, {"tenant": "globex"}).decision["cache"] == "miss"  # another tenant: generated anew
    assert served(h).decision["cache"] == "miss"  # and a request without a key
    assert len(h.generated) == 3
    # Tenants that share a namespace on purpose share its answers; the replay names who asked.
    assert served(h, {"tenant": "acme", "cache_namespace": "shared"}).decision["cache"] == "miss"
    shared = served(h, {"tenant": "globex", "cache_namespace": "shared"})
    assert shared.decision["cache"] == "hit" and shared.decision["tenant"] == "globex" and len(h.generated) == 4
    # A key whose namespace is another tenant's name reads that tenant's answers (None: the tenant's name).
    assert served(h, {"tenant": "initech", "cache_namespace": "acme"}).decision["cache"] == "hit"


def test_a_shared_namespace_still_keeps_apart_keys_with_other_bounds(store: str) -> None:
    h = cached_harness(store)
    shared = {"cache_namespace": "shared", "allowed_models": [PRIMARY, FALLBACK]}
    assert served(h, {**shared, "tenant": "acme"}).decision["cache"] == "miss"
    same = {**shared, "tenant": "globex", "allowed_models": [FALLBACK, PRIMARY]}  # the same set, another order
    assert served(h, same).decision["cache"] == "hit"
    assert served(h, {**shared, "allowed_models": [FALLBACK]}).decision["cache"] == "miss"
    assert served(h, {**shared, "prefer_ceiling": "cost"}).decision["cache"] == "miss"
    assert served(h, {**shared, "allowed_use_cases": ["agent"]}).decision["cache"] == "miss"


def test_semantic_answers_stay_within_their_namespace(store: str) -> None:
    def same_point(text: str) -> np.ndarray:  # stands in for e5: every text at one point, the guards alone decide
        return np.ones(8, dtype=np.float32) / np.sqrt(8)

    h = cached_harness(store, "semantic", same_point)
    asked, paraphrase = "How do I reset my password?", "How can I reset my password?"
    assert served(h, {"tenant": "acme"}, asked).decision["cache"] == "miss"
    assert served(h, {"tenant": "globex"}, paraphrase).decision["cache"] == "miss"
    assert served(h, {"tenant": "acme"}, paraphrase).decision["cache"].startswith("hit: semantic")
    assert served(h, {"tenant": "acme", "cache_namespace": "shared"}, asked).decision["cache"] == "miss"
    hit = served(h, {"tenant": "globex", "cache_namespace": "shared"}, paraphrase).decision
    assert hit["cache"].startswith("hit: semantic") and hit["tenant"] == "globex"


def test_the_namespace_is_in_every_key_and_scope_and_keys_without_one_are_unchanged() -> None:
    def fields(**options) -> dict:
        return key_fields(RouterRequest.of("capital of France?", options, {}), "cpu", "rev")

    plain = fields()
    assert key_of(fields(traceparent=TRACE)) == key_of(plain)  # the trace context changes no answer
    assert key_of({**plain, "namespace": None}) == key_of({k: v for k, v in plain.items() if k != "namespace"})
    for other in (fields(tenant="acme"), fields(cache_namespace="acme"), fields(allowed_models=[PRIMARY])):
        assert key_of(other) != key_of(plain) and scope_of(other) != scope_of(plain)
    assert key_of(fields(tenant="acme")) == key_of(fields(tenant="globex", cache_namespace="acme"))
    assert set(ANSWER_BOUNDS) <= set(RouteOptions.model_fields)


# -- the contract and the front ----------------------------------------------------------------------
@pytest.mark.parametrize(("options", "field", "words"), [
    ({"allowed_models": ["../etc/passwd"]}, "options.allowed_models[0]", "not a model name (no paths)"),
    ({"allowed_models": []}, "options.allowed_models", "at least 1 item"),
    ({"allowed_use_cases": ["chat"]}, "options.allowed_use_cases[0]", "'chat' unknown. Available: ['agent'"),
    ({"prefer_ceiling": "best"}, "options.prefer_ceiling", "Available: ['quality', 'balanced', 'cost']"),
    ({"cache_namespace": "a b"}, "options.cache_namespace", "must be 1 to 64 of A-Z a-z 0-9 _ . -"),
    ({"cache_namespace": "x" * 65}, "options.cache_namespace", "must be 1 to 64"),
    ({"tenant": ""}, "options.tenant", "must be 1 to 64"),
    ({"traceparent": TRACE.upper()}, "options.traceparent", "not a W3C traceparent"),
    ({"traceparent": "00-" + "0" * 32 + TRACE[35:]}, "options.traceparent", "ids not all zeros"),
    ({"traceparent": TRACE[:-1]}, "options.traceparent", "00-<32 hex>-<16 hex>-<2 hex>"),
])
def test_bad_bounds_are_refused_naming_the_option(options: dict, field: str, words: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_options(options)
    assert caught.value.field == field and words in str(caught.value)


def test_good_bounds_round_trip() -> None:
    options = {"tenant": "acme-1", "allowed_models": [PRIMARY], "allowed_use_cases": ["agent"],
               "prefer_ceiling": "balanced", "cache_namespace": "team.a", "traceparent": TRACE}
    assert parse_options(json.dumps(options)).wire() == options


def test_a_refusal_crosses_the_wire_as_forbidden_and_reaches_the_client_as_403() -> None:
    wire = WireError.parse(WireError.of(Forbidden("options.model", f"'x' is not allowed. Allowed: ['{PRIMARY}']"))
                           .to_message())
    assert wire.kind is ErrorKind.FORBIDDEN and wire.field == "options.model" and wire.triton_code == "INVALID_ARG"
    with pytest.raises(Forbidden):
        wire.raise_as()
    error = from_wire(wire, lambda f: {"options.model": "model"}.get(f, f))
    assert error.status == 403 and error.param == "model" and error.message.startswith("model: 'x' is not allowed")
    assert error.body()["error"]["type"] == "permission_error" and error.code == "model_not_allowed"
    use_case = from_wire(WireError.of(Forbidden("options.use_case", "'tts' is not allowed")))
    assert use_case.status == 403 and use_case.code == "use_case_not_allowed"

