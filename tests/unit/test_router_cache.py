"""The router with the response cache (in-process): what is answered from it, and what is never kept.
Observed from the outside: the classifier's and the models' calls, and the events a client receives."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from model_router.cache import ResponseCache, key_of
from model_router.contract.media import SpeechOutput
from model_router.contract.router import RouterAnswer, RouterRequest
from model_router.contract.tensors import strings
from model_router.errors import Cancelled, TargetError, never
from model_router.registry import load_registry
from model_router.routing.cached import Revision, RouterCache, key_fields, revision_of
from model_router.routing.router import Router
from model_router.serving.health import HealthTracker
from model_router.serving.loader import ModelLoader

from .test_loader import RecordingControl
from .test_router import FALLBACK, PRIMARY, classification


SPEAKER = "tts_espeak"  # the cpu profile's speak step
SPEECH = SpeechOutput(b"RIFF wav", 16000)


class Harness:
    """The real Router and ResponseCache; plain functions for the classifier and the models, which
    write down each call (what reached a model) and cut every answer at max_tokens ("length")."""

    def __init__(self, mode: str = "exact", broken: set[str] = frozenset(), embed=None) -> None:
        self.registry = load_registry()
        managed = {m.name: (m.memory_mb, m.gpu_memory_mb, m.pinned) for m in self.registry.models.values()
                   if "cpu" in m.profiles}
        self.loader = ModelLoader(RecordingControl(), managed, 6000)
        self.classified: list[str] = []
        self.generated: list[str] = []
        self.broken = set(broken)
        self.recovering: set[str] = set()  # models whose stub is being reloaded
        self.store = ResponseCache("memory", semantic_threshold=0.965 if embed else None, embed=embed)
        self.router = Router(self.registry, "cpu", self.classify, self.invoke, self.loader,
                             HealthTracker(threshold=1, cooldown_s=60),
                             recovering=lambda model: "its stub is reloaded" if model in self.recovering else "",
                             cache=RouterCache(self.store, "cpu", Revision(self.registry, "cpu"), mode))

    def classify(self, text, kinds):
        self.classified.append(text)
        return classification()

    def invoke(self, spec, inputs, stream, timeout_s, outputs, cancelled=never, gone=None):
        self.generated.append(spec.name)
        if spec.name in self.broken:
            raise TargetError(f"{spec.name}: boom")
        if spec.name == SPEAKER:
            yield SPEECH.encode()
            return
        for piece, finish in (("Par", ""), ("is", "length")):
            yield {"text_output": strings(piece), "finish_reason": strings(finish),
                   "num_input_tokens": np.array([5], dtype=np.uint32),
                   "num_output_tokens": np.array([1], dtype=np.uint32)}

    def ask(self, options: dict | None = None, text: str = "capital of France?", **attachments: bytes) -> list:
        sampling = {"max_tokens": 4, **(options or {}).pop("sampling", {})} if options else {"max_tokens": 4}
        raw = json.dumps({"sampling_parameters": sampling, **(options or {})})
        return list(self.router.route(RouterRequest.of(text, raw, attachments)))


def test_a_repeated_question_is_answered_without_classifying_or_generating() -> None:
    h = Harness()
    first = h.ask()[-1]
    assert first.decision["cache"] == "miss" and h.classified and h.generated == [PRIMARY]
    again = h.ask(text="  CAPITAL of france ")[-1]
    assert again.final and again.decision["cache"] == "hit"
    assert (again.text, again.usage) == (first.text, first.usage)
    assert first.finish_reason == again.finish_reason == "length"  # cut at max_tokens, then and now
    assert again.decision["model"] == PRIMARY and again.decision["classifier_ms"] == 0
    # The answer as it was sent; of its decision only what was not done again this time differs.
    assert dataclasses.replace(again, decision={}) == dataclasses.replace(first, decision={})
    replayed = ("id", "cache", "total_ms", "load_ms", "classifier_ms", "select_ms")
    assert {k: v for k, v in again.decision.items() if k not in replayed} == \
        {k: v for k, v in first.decision.items() if k not in replayed}
    assert len(h.classified) == 1 and h.generated == [PRIMARY]


def test_a_streamed_repeat_streams_the_cached_pieces() -> None:
    h = Harness()
    h.ask({"stream": True})
    events = h.ask({"stream": True})
    assert [e.text for e in events if not e.final] == ["Par", "is"] and events[-1].decision["cache"] == "hit"
    assert [e.final for e in events] == [False, False, True] and events[-1].text == "Paris"
    assert h.generated == [PRIMARY]
    whole = h.ask()[-1]  # the same answer, asked without streaming
    assert whole.text == "Paris" and whole.decision["cache"] == "hit"


@pytest.mark.parametrize("options, why", [
    ({"sampling": {"temperature": 0.8}}, "skipped: sampled without a seed"),
    ({"cache": "off"}, "skipped: off"),
])
def test_requests_that_are_never_cached(options: dict, why: str) -> None:
    h = Harness()
    for _ in range(2):
        assert h.ask(dict(options))[-1].decision["cache"].startswith(why)
    assert h.generated == [PRIMARY, PRIMARY] and h.store.stats()["bytes"] == 0


def test_a_seeded_sampled_request_is_cached() -> None:
    h = Harness()
    for _ in range(2):
        last = h.ask({"sampling": {"temperature": 0.8, "seed": 3}})[-1]
    assert last.decision["cache"] == "hit" and h.generated == [PRIMARY]


def test_the_server_mode_applies_unless_the_request_says() -> None:
    h = Harness(mode="off")
    assert h.ask()[-1].decision["cache"] == "skipped: off on this server"
    h.ask({"cache": "exact"})
    assert h.ask({"cache": "exact"})[-1].decision["cache"] == "hit"


def test_an_answer_after_a_fallback_is_not_kept() -> None:
    h = Harness(broken={PRIMARY})
    first = h.ask()[-1]
    assert first.decision["model"] == FALLBACK and first.decision["fallbacks"]
    h.broken.clear()
    for _ in range(2):  # the primary cools down: the stand-in answers again, and is not kept either
        again = h.ask()[-1]
        assert again.decision["cache"] == "miss" and again.decision["model"] == FALLBACK
        assert "cooling down" in again.decision["skipped"][0]["why"] and not again.decision["fallbacks"]
    assert h.generated == [PRIMARY, FALLBACK, FALLBACK, FALLBACK]


def test_an_answer_that_passed_over_a_recovering_model_is_not_kept() -> None:
    h = Harness()
    h.recovering.add(PRIMARY)
    for _ in range(3):  # each repeat reaches a model: no stand-in's answer was kept
        done = h.ask()[-1]
        assert done.decision["cache"] == "miss" and done.decision["model"] == FALLBACK and not done.decision["fallbacks"]
    h.recovering.clear()  # back: nothing is passed over, the answer is kept (the stand-in's never was)
    assert [h.ask()[-1].decision["cache"] for _ in range(2)] == ["miss", "hit"]
    assert h.generated[:3] == [FALLBACK] * 3 and len(h.generated) == 4


def test_an_answer_whose_speech_failed_is_not_kept() -> None:
    h = Harness(broken={SPEAKER})
    avatar = {"use_case": "avatar"}
    for _ in range(3):
        done = h.ask(dict(avatar))[-1]
        assert done.decision["cache"] == "miss" and done.decision["degraded"] and done.audio is None
    h.broken.clear()  # speech works again: the whole answer is kept
    spoken = [h.ask(dict(avatar))[-1] for _ in range(2)]
    assert [d.decision["cache"] for d in spoken] == ["miss", "hit"] and spoken[1].audio == SPEECH.audio
    assert h.generated.count(PRIMARY) == 4


def test_an_image_read_with_ocr_is_not_kept() -> None:
    """The model cannot see images: the answer rests on OCR's reading (degraded), asked again each time."""
    h = Harness()
    for _ in range(3):
        done = h.ask({}, "What does the sign say?", image=b"png")[-1]
        assert done.decision["cache"] == "miss" and "read with OCR" in done.decision["degraded"][0]
    assert h.generated.count(PRIMARY) == 3 and h.generated.count("ocr_tesseract") == 3


def test_a_cancelled_answer_is_not_kept() -> None:
    h = Harness()
    stream = h.router.route(RouterRequest.of("capital of France?", json.dumps({"stream": True}), {}),
                            cancelled=lambda: bool(h.generated))
    with pytest.raises(Cancelled):
        list(stream)
    assert h.ask()[-1].decision["cache"] == "miss"


def test_keys_differ_when_an_answer_changing_field_differs() -> None:
    registry = load_registry()

    def key(options: dict, text: str = "hi", messages: str | None = None) -> str:
        request = RouterRequest.of(text, json.dumps(options), {}, messages=messages)
        return key_of(key_fields(request, "cpu", revision_of(registry, "cpu")))

    base = key({})
    tool = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
    for options in ({"sampling_parameters": {"max_tokens": 5}}, {"use_case": "multimodal"}, {"language": "hi"},
                    {"tools": [tool]}, {"response_format": {"type": "json_object"}}, {"prefer": "cost"}):
        assert key(options) != base, options
    assert key({"stream": True, "timeout_s": 5}) == base
    call = {"id": "a", "function": {"name": "weather", "arguments": '{"city": "Pune"}'}}
    calls = [{"role": "assistant", "content": "", "tool_calls": [call]},
             {"role": "tool", "content": "31 C", "tool_call_id": "a"}]
    other = json.loads(json.dumps(calls))
    other[0]["tool_calls"][0]["function"]["arguments"] = '{"city": "Goa"}'
    assert key({"tools": [tool]}, "", json.dumps(calls)) != key({"tools": [tool]}, "", json.dumps(other))


def test_semantic_requests_share_a_paraphrases_answer_never_a_near_miss() -> None:
    """The embedding stands in for e5 (every text at one point): the guards alone tell these apart."""
    embedded: list[str] = []

    def embed(text: str) -> np.ndarray:
        embedded.append(text)
        return np.ones(4, dtype=np.float32) / 2

    h = Harness(embed=embed)
    semantic = {"cache": "semantic"}
    assert h.ask(dict(semantic), "How do I reset my password?")[-1].decision["cache"] == "miss"
    hit = h.ask(dict(semantic), "How can I reset my password?")[-1]
    assert hit.decision["cache"].startswith("hit: semantic") and hit.text == "Paris" and h.generated == [PRIMARY]
    assert h.ask(dict(semantic), "How do I reset my username?")[-1].decision["cache"] == "miss"  # another entity
    assert h.ask({}, "How can I reset my email?")[-1].decision["cache"] == "miss"  # exact: not even looked up
    assert "How can I reset my email?" not in embedded  # an exact request never embeds


def test_the_openai_fronts_no_cache_header_asks_the_router_for_a_fresh_answer() -> None:
    """Seen at the front's router connection: the options the router would receive."""
    from fastapi.testclient import TestClient

    from openai_front.app import Settings, create_app

    sent: list[dict] = []

    class Connection:
        async def events(self, call):
            sent.append(call.request.options.wire())  # as it travels
            yield RouterAnswer("Paris", True, {"model": PRIMARY, "use_case": "agent"}, finish_reason="stop")

        async def close(self) -> None:
            pass

    app = create_app(Settings())
    body = {"model": "auto", "messages": [{"role": "user", "content": "capital of France?"}]}
    with TestClient(app) as client:
        app.state.router = Connection()
        for headers in ({}, {"Cache-Control": "no-cache"}, {"cache-control": "max-age=0, No-Cache"}):
            assert client.post("/v1/chat/completions", json=body, headers=headers).status_code == 200
    assert [options.get("cache") for options in sent] == [None, "off", "off"]


def test_a_cache_that_fails_never_fails_the_request() -> None:
    """The embedding model fails after its first query: lookups and keeps go on without it."""
    calls: list[str] = []

    def embed(text: str) -> np.ndarray:
        calls.append(text)
        if len(calls) > 1:
            raise OSError("multilingual-e5 is gone")
        return np.ones(4, dtype=np.float32) / 2

    h = Harness(embed=embed)
    semantic = {"cache": "semantic"}
    assert h.ask(dict(semantic), "How do I reset my password?")[-1].decision["cache"] == "miss"  # kept, indexed
    done = h.ask(dict(semantic), "How can I reset my password?")[-1]  # its lookup embeds: fails
    assert done.text == "Paris" and done.decision["cache"] == "skipped: cache error: multilingual-e5 is gone"
    assert h.ask(dict(semantic), "How do I reset my password?")[-1].decision["cache"] == "hit"  # exact still works


def test_an_admins_request_is_never_replayed() -> None:
    h = Harness()
    h.router.admin_key = "secret"
    h.ask({"model": FALLBACK})
    forced = h.ask({"admin_key": "secret", "model": FALLBACK})[-1]  # the same question, asked by an admin
    assert forced.decision["cache"] == "skipped: an admin's request" and forced.decision["model"] == FALLBACK
    assert h.generated == [FALLBACK, FALLBACK]
