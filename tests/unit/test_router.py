"""The routing pipeline with plain functions for the classifier and the targets."""
from __future__ import annotations

import json

import numpy as np
import pytest

from model_router.contract.router import RouterAnswer, RouterRequest
from model_router.classifier import Classification
from model_router.errors import Cancelled, InputError, ServingError, TargetError, never
from model_router.registry import load_registry
from model_router.contract.request import parse_options
from model_router.routing.router import Metrics, Router
from model_router.serving.health import HealthTracker
from model_router.serving.loader import ModelLoader

from .test_loader import RecordingControl

# A simple English question (the classification below: low) goes to SmolLM2, then the next cheapest.
PRIMARY, FALLBACK = "smollm2_135m_instruct", "qwen2_5_coder_0_5b_instruct"
QWEN_1_5B = "qwen2_5_coder_1_5b_instruct"
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def classification(use_case: str = "agent", conf: float = 0.9) -> Classification:
    return Classification(use_case, "en", "low", "text", {"use_case": conf, "language": 1.0, "complexity": 1.0,
                                                         "modality": 1.0}, {use_case: conf})


def unpack(done: RouterAnswer) -> tuple:
    """(decision, text, extras): extras holds the audio and visemes that came with the answer."""
    extras = {k: v for k, v in (("audio", done.audio), ("visemes", done.visemes)) if v is not None}
    return done.decision, done.text, extras


def build(broken: set[str] = frozenset(), conf: float = 0.9, use_case: str = "agent", answer: tuple = ("Par", "is"),
          sent: list | None = None):
    """A router on the CPU profile whose models answer `answer` in pieces; `sent` gets each call's inputs."""
    reg = load_registry()
    ctl = RecordingControl()
    managed = {m.name: (m.memory_mb, m.gpu_memory_mb, m.pinned) for m in reg.models.values() if "cpu" in m.profiles}
    loader = ModelLoader(ctl, managed, reg.profile("cpu").memory_budget_mb)
    calls: list[str] = []

    def invoke(spec, inputs, stream, timeout_s, outputs, cancelled=never, gone=None):
        calls.append(spec.name)
        if sent is not None:
            sent.append(inputs)
        if spec.name in broken:
            raise TargetError(f"{spec.name}: boom")
        assert json.loads(inputs["sampling_parameters"][0]) == {"max_tokens": 4}
        for piece in answer:
            yield {"text_output": np.array([piece.encode()], dtype=np.object_)}

    router = Router(reg, "cpu", lambda text, kinds: classification(use_case, conf), invoke, loader,
                    HealthTracker(threshold=1, cooldown_s=60))
    return router, calls, ctl


def req(options: dict | None = None, text: str = "capital of France?"):
    return RouterRequest.of(text, json.dumps({"sampling_parameters": {"max_tokens": 4}, **(options or {})}), {})


def test_loads_and_answers_with_a_decision() -> None:
    router, calls, ctl = build()
    events = list(router.route(req()))
    assert [e.final for e in events] == [True]  # unstreamed: the whole answer alone
    decision, text, extras = unpack(events[-1])
    assert text == "Paris" and extras == {} and decision["model"] == PRIMARY and ("load", PRIMARY) in ctl.calls
    assert decision["use_case"] == "agent" and decision["candidates"][0]["model"] == PRIMARY


def test_streams_pieces_then_decision() -> None:
    router, _, _ = build()
    events = list(router.route(req({"stream": True})))
    assert [(e.text, e.final) for e in events[:-1]] == [("Par", False), ("is", False)]
    assert events[-1].final and events[-1].text == "Paris" and events[-1].decision["model"] == PRIMARY


def test_falls_back_and_cools_down() -> None:
    router, calls, _ = build(broken={PRIMARY})
    decision = list(router.route(req()))[-1].decision
    assert decision["model"] == FALLBACK and decision["fallbacks"][0]["model"] == PRIMARY
    again = list(router.route(req()))[-1].decision
    assert again["model"] == FALLBACK and again["skipped"][0]["model"] == PRIMARY
    assert "cooling down" in again["skipped"][0]["why"]
    assert calls == [PRIMARY, FALLBACK, FALLBACK]


def test_no_fallback_when_disallowed_lists_what_was_tried() -> None:
    router, _, _ = build(broken={PRIMARY})
    with pytest.raises(ServingError, match=f"tried {PRIMARY}: {PRIMARY}: boom"):
        list(router.route(req({"allow_fallback": False})))


def test_use_case_without_a_model_is_a_clear_error() -> None:
    router, _, _ = build(use_case="video")
    router.registry.profiles["cpu"].chains.pop("video")
    with pytest.raises(ServingError, match="no model serves use case 'video' on profile 'cpu'"):
        list(router.route(req()))


def test_low_confidence_text_goes_to_the_assistant() -> None:
    router, _, _ = build(use_case="tts", conf=0.3)
    decision = list(router.route(req()))[-1].decision
    assert decision["use_case"] == "agent" and "low confidence" in decision["reason"]


def test_use_case_override() -> None:
    router, _, _ = build(use_case="tts")
    decision = list(router.route(req({"use_case": "agent"})))[-1].decision
    assert decision["use_case"] == "agent" and "options.use_case" in decision["reason"]


@pytest.mark.parametrize("raw, words", [
    ("{bad", "options: not valid JSON"),
    ('{"use_case": "chat"}', "options.use_case: 'chat' unknown. Available"),
    ('{"max_latency_ms": -5}', "options.max_latency_ms: -5 is out of range"),
    ('{"stream": "yes"}', "options.stream: expected true or false"),
    ('{"model": "../etc/passwd"}', "options.model: '../etc/passwd' is not a model name"),
    ('{"colour": 1}', "options.colour: unknown option. Available"),
    ('[1]', "options: expected a JSON object"),
])
def test_bad_options(raw: str, words: str) -> None:
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace("[", r"\[")):
        parse_options(raw)


def test_bad_request_fields() -> None:
    with pytest.raises(InputError, match="text: empty, and no image"):
        RouterRequest.of("", None, {})
    with pytest.raises(InputError, match="image: 11 bytes exceeds the limit of 10"):
        from model_router.contract import request as options

        limits = dict(options.MAX_ATTACHMENT_BYTES)
        options.MAX_ATTACHMENT_BYTES["image"] = 10
        try:
            RouterRequest.of("x", None, {"image": b"x" * 11})
        finally:
            options.MAX_ATTACHMENT_BYTES.update(limits)
    with pytest.raises(InputError, match="text: not valid UTF-8"):
        RouterRequest.of(b"\xc3\x28", None, {})


class CountingMetrics(Metrics):
    def __init__(self) -> None:
        self.cancelled_use_cases: list[str] = []

    def cancelled(self, use_case: str) -> None:
        self.cancelled_use_cases.append(use_case)


def test_a_cancelled_request_stops_mid_answer_closes_its_call_and_gives_its_lease_back() -> None:
    reg = load_registry()
    managed = {m.name: (m.memory_mb, m.gpu_memory_mb, m.pinned) for m in reg.managed("cpu")}
    loader = ModelLoader(RecordingControl(), managed, 6000)
    closed: list[str] = []
    gone = {"now": False}

    def invoke(spec, inputs, stream, timeout_s, outputs, cancelled=never, gone=None):
        try:
            for piece in ("Par", "is", " is", " the", " capital"):
                yield {"text_output": np.array([piece.encode()], dtype=np.object_)}
        finally:
            closed.append(spec.name)

    metrics = CountingMetrics()
    router = Router(reg, "cpu", lambda text, kinds: classification(), invoke, loader, HealthTracker(), metrics)
    pieces = []
    with pytest.raises(Cancelled, match="mid-answer"):
        for event in router.route(req({"stream": True}), cancelled=lambda: gone["now"]):
            pieces.append(event.text)
            gone["now"] = True  # the client leaves after its first piece
    assert pieces == ["Par"] and closed == [PRIMARY]
    assert metrics.cancelled_use_cases == ["agent"]
    with loader._cond:
        assert loader._states[PRIMARY].inflight == 0  # the lease is back: the model may be evicted again


def test_a_request_cancelled_before_its_steps_runs_none_of_them() -> None:
    router, calls, _ = build(use_case="multimodal")
    with pytest.raises(Cancelled, match="before step read_image"):
        list(router.route(RouterRequest.of("What does it say?", None, {"image": b"png"}), cancelled=lambda: True))
    assert calls == []


def test_a_classifier_that_cannot_answer_leaves_the_request_to_the_general_assistant() -> None:
    router, calls, _ = build()
    heard: list[tuple[str, str]] = []

    def dead(text: str, kinds: tuple[str, ...]) -> Classification:
        raise ServingError("query_classifier: no answer within 5 s")

    router.classify, router.on_target_error = dead, lambda model, error: heard.append((model, error))
    decision, text, _ = unpack(list(router.route(req()))[-1])
    # Read from the attachments alone, complexity is taken for medium: the 0.5B, not SmolLM2.
    assert text == "Paris" and decision["model"] == FALLBACK and decision["use_case"] == "agent"
    assert decision["reason"].startswith("classifier unavailable") and heard[0][0] == "query_classifier"


def test_a_simple_question_with_tools_goes_to_the_1_5b_which_gets_the_tools_and_answers_a_call() -> None:
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    sent: list[dict] = []
    router, calls, _ = build(answer=(call,), sent=sent)
    done = list(router.route(req({"tools": [WEATHER]}, text="Weather in Paris?")))[-1]
    assert calls == [QWEN_1_5B] and "tools or a structured answer" in done.decision["decided_by"]
    assert json.loads(sent[0]["tools"][0]) == [WEATHER]
    assert json.loads(sent[0]["messages"][0]) == [{"role": "user", "content": "Weather in Paris?"}]
    assert done.text == "" and done.finish_reason == "tool_calls"
    assert json.loads(done.tool_calls[0]["function"]["arguments"]) == {"city": "Paris"}


def test_when_the_1_5b_fails_a_tools_request_falls_back_to_the_0_5b_then_smollm2_in_hermes_form() -> None:
    sent: list[dict] = []
    router, calls, _ = build(broken={QWEN_1_5B, FALLBACK}, sent=sent)
    decision = list(router.route(req({"tools": [WEATHER]}, text="Weather in Paris?")))[-1].decision
    assert calls == [QWEN_1_5B, FALLBACK, PRIMARY] and decision["model"] == PRIMARY
    assert [f["model"] for f in decision["fallbacks"]] == [QWEN_1_5B, FALLBACK]
    assert "tools" in sent[1] and "tools" not in sent[2]  # SmolLM2's template takes none: Hermes text instead
    assert "<tools>" in json.loads(sent[2]["messages"][0])[0]["content"]
