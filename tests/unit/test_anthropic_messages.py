"""Anthropic's Messages API on the front: bodies -> the router's call (turns, blocks, tools, sampling,
field names in errors), the router's answers -> messages and events (read back with the anthropic
SDK's own types), errors in Anthropic's shape; the route with the router played by a stand-in."""
from __future__ import annotations

import asyncio
import base64
import json
from typing import Any, AsyncIterator, Iterator

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message as SdkMessage
from anthropic.types import RawMessageStreamEvent
from fastapi.testclient import TestClient
from pydantic import TypeAdapter, ValidationError

from model_router.contract.errors import ErrorKind, WireError
from model_router.contract.router import RouterAnswer, Usage
from openai_front.anthropic_messages import MessagesRequest, answer, error_body
from openai_front.anthropic_messages.stream import message_events
from openai_front.anthropic_messages.translate import IS_ERROR, messages_call
from openai_front.app import Settings, create_app
from openai_front.errors import ApiError, from_wire, invalid_body

KEY = "k"
LLM = "smollm2_135m_instruct"
DECISION = {"model": LLM, "use_case": "agent", "id": "d" * 32}
PNG = b"\x89PNG\r\n\x1a\n fake but bytes"
WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "auto", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}], **fields}


def parsed(**fields: Any) -> MessagesRequest:
    return MessagesRequest.model_validate(body(**fields))


def refusal(**fields: Any) -> ApiError:
    """The 400 a body gets, from its validation or its translation."""
    try:
        req = MessagesRequest.model_validate(body(**fields))
    except ValidationError as exc:
        return invalid_body(exc, MessagesRequest)
    with pytest.raises(ApiError) as info:
        messages_call(req)
    return info.value


def image(raw: bytes = PNG, **source: Any) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                       "data": base64.b64encode(raw).decode(), **source}}


def tool_use(uid: str = "call_1", city: str = "Paris") -> dict[str, Any]:
    return {"type": "tool_use", "id": uid, "name": "get_weather", "input": {"city": city}}


def tool_round(result: dict[str, Any], *more: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": [tool_use()]},
            {"role": "user", "content": [result, *more]}]


# -- translation -----------------------------------------------------------------------------------
def test_a_single_user_message_is_the_routers_text_with_anthropics_sampling_fields() -> None:
    call = messages_call(parsed(stop_sequences=["\n"], temperature=0.3, top_p=0.9, top_k=5, metadata={"user_id": "u"}))
    assert call.request.text == "Hi" and call.request.messages == () and call.request.attachments == {}
    assert call.request.options.wire() == {"sampling_parameters": {"max_tokens": 16, "temperature": 0.3, "top_p": 0.9,
                                                                   "top_k": 5, "stop": ["\n"]}}
    assert call.openai_field("options.sampling_parameters.stop") == "stop_sequences"
    named = messages_call(parsed(model=LLM, stream=True))
    assert named.request.options.model == LLM and named.request.options.stream


def test_system_and_a_conversation_become_the_routers_turns() -> None:
    call = messages_call(parsed(system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
                                messages=[{"role": "user", "content": [{"type": "text", "text": "I am Ada."}]},
                                          {"role": "assistant", "content": "Hello Ada."},
                                          {"role": "user", "content": "My name?"}]))
    assert [m.as_turn() for m in call.request.messages] == [
        {"role": "system", "content": "Be brief.\nBe kind."}, {"role": "user", "content": "I am Ada."},
        {"role": "assistant", "content": "Hello Ada."}, {"role": "user", "content": "My name?"}]
    assert call.request.text == "My name?"


def test_tool_use_and_tool_result_blocks_become_calls_and_tool_turns() -> None:
    call = messages_call(parsed(tools=[WEATHER], messages=tool_round(
        {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "18 C"}]},
        {"type": "text", "text": "And tomorrow?"})))
    turns = [m.as_turn() for m in call.request.messages]
    assert turns[1] == {"role": "assistant", "content": "", "tool_calls": [CALL]}
    # The tool's result first, then the user's words, as Anthropic orders a user message's blocks.
    assert turns[2:] == [{"role": "tool", "content": "18 C", "tool_call_id": "call_1"},
                         {"role": "user", "content": "And tomorrow?"}]
    failed = messages_call(parsed(messages=tool_round(
        {"type": "tool_result", "tool_use_id": "call_1", "content": "no such city", "is_error": True})))
    assert failed.request.messages[-1].content == f"{IS_ERROR}no such city"


def test_an_image_block_is_the_routers_image() -> None:
    call = messages_call(parsed(messages=[{"role": "user", "content": [image(), {"type": "text", "text": "Read it"}]}]))
    assert call.request.attachments == {"image": PNG} and call.request.text == "Read it"


@pytest.mark.parametrize(("choice", "routed", "parallel"), [
    ({"type": "auto"}, "auto", True),
    ({"type": "any"}, "required", True),
    ({"type": "none"}, "none", True),
    ({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
     {"type": "function", "function": {"name": "get_weather"}}, False),
])
def test_tools_and_tool_choice_become_the_contracts(choice: dict, routed: Any, parallel: bool) -> None:
    options = messages_call(parsed(tools=[WEATHER], tool_choice=choice)).request.options
    assert options.wire()["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city.", "parameters": WEATHER["input_schema"]}}]
    got = options.tool_choice if isinstance(options.tool_choice, str) else options.tool_choice.model_dump()
    assert got == routed and options.parallel_tool_calls is parallel


def test_output_config_format_is_the_routers_json_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    options = messages_call(parsed(output_config={"format": {"type": "json_schema", "schema": schema}})).request.options
    assert options.response_format.type == "json_schema" and options.response_format.json_schema.schema_ == schema


def test_no_op_fields_change_nothing_in_the_routers_call() -> None:
    plain = messages_call(parsed(tools=[WEATHER])).request
    noisy = messages_call(parsed(
        tools=[{**WEATHER, "cache_control": {"type": "ephemeral"}}], cache_control={"type": "ephemeral"},
        metadata={"user_id": "u1"}, service_tier="auto", speed="standard", thinking={"type": "disabled"},
        user_profile_id="p", workspace_id="w",
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]}]))
    assert noisy.request == plain


@pytest.mark.parametrize(("fields", "param"), [
    ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "thinking"),
    ({"container": "c1"}, "container"),
    ({"output_config": {"effort": "high"}}, "output_config.effort"),
    ({"speed": "fast"}, "speed"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
    ({"tools": [{**WEATHER, "defer_loading": True}]}, "tools[0].defer_loading"),
    ({"tool_choice": {"type": "tool"}}, "tool_choice"),
    ({"frequency_penalty": 1}, "frequency_penalty"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}]}, "messages[1].content[0].source"),
    ({"messages": [{"role": "user", "content": [image(), image()]}]}, "messages[0].content[1]"),
    ({"messages": [{"role": "user", "content": [{**image(), "source": {"type": "base64", "media_type": "image/png",
                                                                       "data": "%%%"}}]}]}, "messages[0].content[0].source.data"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": [image()]}]},
     "messages[1].content[0].type"),
    ({"messages": [{"role": "user", "content": [tool_use()]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "The answer is"}]},
     "messages[1].role"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "a", "colour": "red"}]}]}, "messages[0].content[0]"),
    ({"messages": tool_round({"type": "tool_result", "tool_use_id": "call_1", "content": [image()]})},
     "messages[2].content[0].content[0].type"),
])
def test_what_cannot_be_honoured_is_refused_naming_the_field(fields: dict, param: str) -> None:
    err = refusal(**fields)
    assert err.status == 400 and err.message.startswith(f"{param}: "), err.message


@pytest.mark.parametrize(("fields", "param"), [
    ({"tools": [WEATHER, WEATHER]}, "tools[1].name"),
    ({"tools": [{**WEATHER, "name": "get weather"}]}, "tools[0].name"),
    ({"tools": [{**WEATHER, "input_schema": {"type": "object", "properties": 3}}]}, "tools[0].input_schema"),
    ({"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "book_flight"}}, "tool_choice.name"),
    ({"temperature": 7.0}, "temperature"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"stop_sequences": [str(i) for i in range(9)]}, "stop_sequences"),
    ({"model": "../etc"}, "model"),
    ({"messages": tool_round({"type": "tool_result", "tool_use_id": "call_9", "content": "18 C"})},
     "messages[2].content[0].tool_use_id"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": [
        {**tool_use(), "name": ""}]}, {"role": "user", "content": "b"}]}, "messages[1].content[0].name"),
])
def test_the_contracts_refusals_name_anthropics_fields(fields: dict, param: str) -> None:
    err = refusal(**fields)
    assert err.status == 400 and err.param == param, err.message


# -- answers and events ----------------------------------------------------------------------------
def final(text: str = "Paris.", calls: list | None = None, finish: str | None = "stop") -> RouterAnswer:
    return RouterAnswer(text, decision=DECISION, usage=Usage(11, 3), finish_reason=finish, tool_calls=calls)


@pytest.mark.parametrize(("finish", "calls", "stop"), [
    ("stop", None, "end_turn"), ("length", None, "max_tokens"), ("tool_calls", [CALL], "tool_use"),
    (None, [CALL], "tool_use"), (None, None, "end_turn")])
def test_the_stop_reason_is_anthropics(finish: str | None, calls: list | None, stop: str) -> None:
    assert answer.stop_reason(final(calls=calls, finish=finish)) == stop


def test_a_whole_answer_is_anthropics_message_with_the_engines_counts() -> None:
    got = answer.message("msg_1", LLM, final("Let me look.", [CALL, {**CALL, "id": "call_2", "function": {
        "name": "get_weather", "arguments": '{"city": "Rome"}'}}], "tool_calls"))
    sdk = SdkMessage.model_validate(got)  # strict: the SDK's own type reads it
    assert [b.type for b in sdk.content] == ["text", "tool_use", "tool_use"] and sdk.content[0].text == "Let me look."
    assert [(b.id, b.name, b.input) for b in sdk.content[1:]] == [("call_1", "get_weather", {"city": "Paris"}),
                                                                 ("call_2", "get_weather", {"city": "Rome"})]
    assert sdk.stop_reason == "tool_use" and sdk.stop_sequence is None and sdk.model == LLM
    assert (sdk.usage.input_tokens, sdk.usage.output_tokens) == (11, 3) and got["routing"] == DECISION
    only_calls = answer.message("msg_2", LLM, final("", [CALL], "tool_calls"))
    assert [b["type"] for b in only_calls["content"]] == ["tool_use"]
    assert answer.message("msg_3", LLM, final(""))["content"] == [{"type": "text", "text": ""}]


def test_a_call_cut_by_max_tokens_has_an_empty_input() -> None:
    cut = {**CALL, "function": {"name": "get_weather", "arguments": '{"city": "Par'}}
    got = answer.message("msg_1", LLM, final("", [cut], "length"))
    assert got["content"][0]["input"] == {} and got["stop_reason"] == "max_tokens"


async def _script(items: list[Any], closed: list[bool], call: Any = None) -> AsyncIterator[RouterAnswer]:
    """The router's responses as the connection yields them: a WireError is raised as the connection
    raises it (from_wire, its field named as the client sent it)."""
    try:
        for item in items:
            if isinstance(item, WireError):
                raise from_wire(item, call.openai_field if call else lambda f: f)
            yield item
    finally:
        closed.append(True)


def events_of(pieces: list[str], *then: Any) -> list[tuple[str, dict]]:
    """(event line, data) of each event streamed for the router's pieces, then `then` (its final
    response, or an error)."""
    async def run() -> list[str]:
        events = _script([*(RouterAnswer(p, final=False) for p in pieces), *then], [])
        return [line async for line in message_events("auto", await anext(events), events)]
    return [parse_event(raw) for raw in asyncio.run(run())]


def parse_event(raw: str) -> tuple[str, dict]:
    head, data = raw.rstrip("\n").split("\n")
    assert head.startswith("event: ") and data.startswith("data: ")
    return head.removeprefix("event: "), json.loads(data.removeprefix("data: "))


def replayed(events: list[tuple[str, dict]]) -> Any:
    """The message the SDK's own stream accumulator builds from the events (types checked on the way)."""
    snapshot, bufs = None, {}
    for name, data in events:
        assert data["type"] == name
        if name != "ping":
            snapshot = accumulate_event(event=TypeAdapter(RawMessageStreamEvent).validate_python(data),
                                        current_snapshot=snapshot, json_bufs=bufs)
    return snapshot


def test_streamed_text_comes_in_anthropics_event_order() -> None:
    events = events_of(["The capital ", "is "], final("Paris.", finish="length"))
    assert [name for name, _ in events] == ["message_start", "ping", "content_block_start", "content_block_delta",
                                            "content_block_delta", "content_block_delta", "content_block_stop",
                                            "message_delta", "message_stop"]
    start, delta = events[0][1]["message"], events[-2][1]
    assert start["content"] == [] and start["role"] == "assistant" and start["id"].startswith("msg_")
    assert delta["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None} and delta["routing"] == DECISION
    message = replayed(events)
    assert message.content[0].text == "The capital is Paris." and message.stop_reason == "max_tokens"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 3)


def test_streamed_tool_calls_are_blocks_whose_json_pieces_join_into_their_input() -> None:
    long_call = {**CALL, "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris " * 12})}}
    events = events_of([], final("", [long_call, {**CALL, "id": "call_2"}], "tool_calls"))
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert [(b["type"], b["id"], b["input"]) for b in starts] == [("tool_use", "call_1", {}), ("tool_use", "call_2", {})]
    pieces = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta" and d["index"] == 0]
    assert len(pieces) > 1 and json.loads("".join(pieces)) == {"city": "Paris " * 12}
    message = replayed(events)
    assert [b.input for b in message.content] == [{"city": "Paris " * 12}, {"city": "Paris"}]
    assert message.stop_reason == "tool_use"


def test_words_before_a_tool_call_are_the_text_block_and_the_call_the_next() -> None:
    events = events_of([], final("Let me look.", [CALL], "tool_calls"))
    assert [d["index"] for n, d in events if n.startswith("content_block")] == [0, 0, 0, 1, 1, 1]
    message = replayed(events)
    assert [b.type for b in message.content] == ["text", "tool_use"] and message.content[0].text == "Let me look."
    assert message.content[1].input == {"city": "Paris"}


def test_an_error_after_the_first_piece_is_an_error_event() -> None:
    events = events_of(["The "], WireError(ErrorKind.OVERLOADED, "router: busy", retry_after_s=1))
    assert [name for name, _ in events][-2:] == ["content_block_delta", "error"]
    assert events[-1][1] == {"type": "error", "error": {"type": "overloaded_error", "message": "router: busy"}}


def test_a_client_that_leaves_closes_the_routers_request() -> None:
    closed: list[bool] = []

    async def run() -> None:
        events = _script([RouterAnswer("a", final=False), RouterAnswer("b", final=False), final()], closed)
        stream = message_events("auto", await anext(events), events)
        await anext(stream)
        await stream.aclose()  # what the server does when the client goes away

        assert closed == [True]  # at once, not when the loop shuts down

    asyncio.run(run())


@pytest.mark.parametrize(("status", "kind"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"), (404, "not_found_error"),
    (413, "request_too_large"), (429, "rate_limit_error"), (500, "api_error"), (503, "overloaded_error"),
    (529, "overloaded_error"), (499, "invalid_request_error"), (502, "api_error")])
def test_errors_are_typed_by_status_in_anthropics_shape(status: int, kind: str) -> None:
    assert error_body(ApiError(status, "what went wrong")) == {
        "type": "error", "error": {"type": kind, "message": "what went wrong"}}


# -- the route, with the router played by a stand-in -----------------------------------------------
class _Router:
    """Answers each call with `script` (RouterAnswers, or an error to raise), and records the calls."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.script: list[Any] = [final("Paris.")]
        self.closed: list[bool] = []

    async def close(self) -> None:
        pass

    def events(self, call: Any) -> AsyncIterator[RouterAnswer]:
        self.calls.append(call)
        return _script(self.script, self.closed, call)


@pytest.fixture
def front() -> Iterator[tuple[TestClient, _Router]]:
    with TestClient(create_app(Settings(api_key=KEY))) as client:
        client.app.state.router = router = _Router()
        client.headers.update({"x-api-key": KEY, "anthropic-version": "2023-06-01"})
        yield client, router


def test_the_route_answers_a_message_with_the_routing_header(front) -> None:
    client, router = front
    got = client.post("/v1/messages", json=body())
    assert got.status_code == 200, got.text
    sdk = SdkMessage.model_validate(got.json())
    assert sdk.content[0].text == "Paris." and sdk.model == LLM and sdk.stop_reason == "end_turn"
    assert json.loads(got.headers["x-tmr-routing"]) == DECISION == got.json()["routing"]
    assert router.calls[0].request.text == "Hi"


def test_the_route_streams_events(front) -> None:
    client, router = front
    router.script = [RouterAnswer("Par", final=False), final("is.")]
    got = client.post("/v1/messages", json=body(stream=True))
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/event-stream")
    events = [parse_event(raw + "\n\n") for raw in got.text.strip().split("\n\n")]
    assert replayed(events).content[0].text == "Paris." and router.closed == [True]


@pytest.mark.parametrize("stream", [False, True])
def test_a_refusal_before_the_first_piece_is_an_http_status_with_retry_after(front, stream: bool) -> None:
    client, router = front
    router.script = [WireError(ErrorKind.OVERLOADED, "router: queue full", retry_after_s=2.5)]
    got = client.post("/v1/messages", json=body(stream=stream))
    assert got.status_code == 503 and got.headers["retry-after"] == "3"
    assert got.json() == {"type": "error", "error": {"type": "overloaded_error", "message": "router: queue full"}}


def test_the_routers_refusal_names_the_clients_field(front) -> None:
    client, router = front
    router.script = [WireError(ErrorKind.NOT_FOUND, "options.model: 'claude-x' unknown", "options.model")]
    got = client.post("/v1/messages", json=body(model="claude-x"))
    assert got.status_code == 404 and got.json()["error"] == {"type": "not_found_error",
                                                              "message": "model: 'claude-x' unknown"}


@pytest.mark.parametrize(("headers", "status", "kind"), [
    ({"x-api-key": "wrong"}, 401, "authentication_error"),
    ({"x-api-key": ""}, 401, "authentication_error"),
])
def test_the_key_is_checked_in_anthropics_shape(front, headers: dict, status: int, kind: str) -> None:
    client, router = front
    got = client.post("/v1/messages", json=body(), headers=headers)
    assert got.status_code == status and got.json()["error"]["type"] == kind and not router.calls


def test_a_bad_body_is_a_400_naming_the_field_in_anthropics_shape(front) -> None:
    client, router = front
    got = client.post("/v1/messages", json={k: v for k, v in body().items() if k != "max_tokens"})
    assert got.status_code == 400 and got.json() == {
        "type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: required"}}
    assert not router.calls
