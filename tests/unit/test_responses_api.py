"""POST /v1/responses and its stored responses, with the router played by a stand-in that records the
router's request (built and validated by the front, as the router would decode it) and answers
as the router does: what each Responses field becomes, the Response object and the event stream,
`previous_response_id`, GET and DELETE, and errors named by the client's field."""
from __future__ import annotations

import asyncio
import json
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from model_router.contract.errors import ErrorKind, WireError
from model_router.contract.router import RouterAnswer, RouterRequest, Usage
from openai_front.app import Settings, create_app
from openai_front.errors import from_wire
from openai_front.responses_api.store import MemoryStore, open_store

MODEL = "qwen2_5_coder_1_5b_instruct"
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


class _Router:
    """Answers each call with the next scripted answer: its pieces (streamed when asked), then the final one."""

    def __init__(self) -> None:
        self.calls: list[RouterRequest] = []
        self.script: list[RouterAnswer] = []
        self.refuse: WireError | None = None

    async def close(self) -> None:
        pass

    async def events(self, call):
        # As the router reads it: encoded, sent, decoded.
        self.calls.append(RouterRequest.decode(lambda name: call.request.encode().get(name), 32_000))
        if self.refuse is not None:
            raise from_wire(self.refuse, call.openai_field)
        final = self.script.pop(0)
        decision = {"model": MODEL, "use_case": "agent", "id": "d" * 32}
        if call.request.stream and not final.tool_calls:
            for word in final.text.split(" "):
                yield RouterAnswer(word + " ", final=False)
            final = RouterAnswer("", True, decision, finish_reason=final.finish_reason, usage=final.usage)
        else:
            final = RouterAnswer(final.text, True, decision, finish_reason=final.finish_reason, usage=final.usage,
                                 tool_calls=final.tool_calls)
        yield final


def said(text: str, finish: str = "stop") -> RouterAnswer:
    return RouterAnswer(text, finish_reason=finish, usage=Usage(12, 5))


@pytest.fixture
def front() -> Iterator[tuple[TestClient, _Router]]:
    with TestClient(create_app(Settings())) as client:
        client.app.state.router = router = _Router()
        client.headers["Authorization"] = "Bearer alice"
        yield client, router


def events_of(body: str) -> list[dict[str, Any]]:
    out = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        data = json.loads(lines["data"])
        assert data["type"] == lines["event"]
        out.append(data)
    return out


def test_a_string_input_is_the_routers_text_and_the_answer_a_response(front) -> None:
    client, router = front
    router.script = [said("Paris is the capital.")]
    got = client.post("/v1/responses", json={"model": "auto", "input": "Capital of France?", "max_output_tokens": 20,
                                             "temperature": 0, "metadata": {"app": "t"}, "user": "u1"})
    assert got.status_code == 200, got.text
    body = got.json()
    sent = router.calls[0]
    assert sent.text == "Capital of France?" and sent.options.model is None
    assert sent.options.sampling_parameters.max_tokens == 20 and sent.options.sampling_parameters.temperature == 0
    assert body["object"] == "response" and body["status"] == "completed" and body["id"].startswith("resp_")
    assert body["output"][0]["content"][0] == {"type": "output_text", "text": "Paris is the capital.",
                                               "annotations": [], "logprobs": []}
    assert body["usage"]["input_tokens"] == 12 and body["usage"]["output_tokens"] == 5 and body["usage"]["total_tokens"] == 17
    assert body["model"] == MODEL and body["routing"]["model"] == MODEL
    assert body["metadata"] == {"app": "t", "tmr_model": MODEL, "tmr_use_case": "agent", "tmr_decision_id": "d" * 32}
    assert json.loads(got.headers["x-tmr-routing"])["model"] == MODEL


def test_items_become_the_routers_turns_in_order(front) -> None:
    client, router = front
    router.script = [said("It is sunny in Paris.")]
    items = [{"role": "developer", "content": "Be brief."},
             {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
             {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}',
              "id": "fc_1", "status": "completed"},
             {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21 C"}]
    got = client.post("/v1/responses", json={"model": MODEL, "input": items, "instructions": "You help.",
                                             "tools": [WEATHER], "tool_choice": "auto"})
    assert got.status_code == 200, got.text
    turns = [t.as_turn() for t in router.calls[0].messages]
    assert [t["role"] for t in turns] == ["system", "system", "user", "assistant", "tool"]
    assert turns[0]["content"] == "You help." and turns[1]["content"] == "Be brief."
    assert turns[3]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert turns[4] == {"role": "tool", "content": "sunny, 21 C", "tool_call_id": "call_1"}
    opts = router.calls[0].options
    assert opts.model == MODEL and opts.tools[0].function.name == "get_weather" and opts.tool_choice == "auto"


def test_a_tool_call_is_a_function_call_item(front) -> None:
    client, router = front
    router.script = [RouterAnswer("", finish_reason="tool_calls", usage=Usage(30, 9), tool_calls=[CALL])]
    body = client.post("/v1/responses", json={"model": "auto", "input": "Weather in Paris?", "tools": [WEATHER],
                                              "tool_choice": {"type": "function", "name": "get_weather"}}).json()
    assert router.calls[0].options.tool_choice.function.name == "get_weather"
    assert [i["type"] for i in body["output"]] == ["function_call"]
    assert body["output"][0]["call_id"] == "call_1" and body["output"][0]["arguments"] == '{"city": "Paris"}'


def test_text_format_json_schema_is_the_routers_response_format(front) -> None:
    client, router = front
    router.script = [said('{"city": "Paris"}')]
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    got = client.post("/v1/responses", json={"model": "auto", "input": "Where is the Louvre?", "text": {
        "format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}}})
    assert got.status_code == 200, got.text
    fmt = router.calls[0].options.response_format
    assert fmt.type == "json_schema" and fmt.json_schema.name == "place" and fmt.json_schema.schema_ == schema
    assert got.json()["text"]["format"]["schema"] == schema


def test_a_stored_response_is_continued_fetched_and_deleted_by_its_owner_alone(front) -> None:
    client, router = front
    router.script = [said("Paris."), said("About 2 million.")]
    first = client.post("/v1/responses", json={"model": "auto", "input": "Capital of France?"}).json()
    second = client.post("/v1/responses", json={"model": "auto", "input": "How many live there?",
                                                 "previous_response_id": first["id"]}).json()
    turns = [t.as_turn() for t in router.calls[1].messages]
    assert [(t["role"], t["content"]) for t in turns] == [("user", "Capital of France?"), ("assistant", "Paris."),
                                                          ("user", "How many live there?")]
    assert second["previous_response_id"] == first["id"]
    assert client.get(f"/v1/responses/{first['id']}").json() == first
    other = client.get(f"/v1/responses/{first['id']}", headers={"Authorization": "Bearer bob"})
    assert other.status_code == 404 and other.json()["error"]["param"] == "response_id"
    # Anthropic's header names the caller too: the same key either way is the same owner.
    del client.headers["Authorization"]
    assert client.get(f"/v1/responses/{first['id']}", headers={"x-api-key": "bob"}).status_code == 404
    assert client.get(f"/v1/responses/{first['id']}", headers={"x-api-key": "alice"}).json() == first
    client.headers["Authorization"] = "Bearer alice"
    assert client.delete(f"/v1/responses/{first['id']}").json()["deleted"] is True
    assert client.get(f"/v1/responses/{first['id']}").status_code == 404
    gone = client.post("/v1/responses", json={"model": "auto", "input": "And?", "previous_response_id": first["id"]})
    assert gone.status_code == 404 and gone.json()["error"]["param"] == "previous_response_id"


def test_store_false_keeps_nothing(front) -> None:
    client, router = front
    router.script = [said("Paris.")]
    body = client.post("/v1/responses", json={"model": "auto", "input": "Capital?", "store": False}).json()
    assert body["store"] is False and client.get(f"/v1/responses/{body['id']}").status_code == 404


def test_a_stream_is_the_responses_event_sequence(front) -> None:
    client, router = front
    router.script = [said("Paris is the capital.")]
    got = client.post("/v1/responses", json={"model": "auto", "input": "Capital of France?", "stream": True})
    events = events_of(got.text)
    kinds = [e["type"] for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    final = events[-1]["response"]
    assert deltas == final["output"][0]["content"][0]["text"] == "Paris is the capital. "
    assert final["usage"]["output_tokens"] == 5 and client.get(f"/v1/responses/{final['id']}").json() == final


def test_a_streamed_function_call_comes_in_argument_pieces(front) -> None:
    client, router = front
    args = json.dumps({"city": "Paris", "unit": "celsius", "note": "x" * 60})
    call = {**CALL, "function": {"name": "get_weather", "arguments": args}}
    router.script = [RouterAnswer("", finish_reason="tool_calls", usage=Usage(30, 9), tool_calls=[call])]
    got = client.post("/v1/responses", json={"model": "auto", "input": "Weather?", "tools": [WEATHER], "stream": True})
    events = events_of(got.text)
    pieces = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert len(pieces) > 1 and "".join(pieces) == args
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert done["arguments"] == args and events[-1]["response"]["output"][0]["call_id"] == "call_1"


def test_an_answer_cut_by_max_output_tokens_is_incomplete(front) -> None:
    client, router = front
    router.script = [said("Paris is", "length"), said("Paris is", "length")]
    body = client.post("/v1/responses", json={"model": "auto", "input": "Capital?", "max_output_tokens": 2}).json()
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    streamed = events_of(client.post("/v1/responses", json={"model": "auto", "input": "Capital?", "stream": True,
                                                            "max_output_tokens": 2}).text)
    assert streamed[-1]["type"] == "response.incomplete"


@pytest.mark.parametrize(("body", "param"), [
    ({"conversation": "conv_1"}, "conversation"),
    ({"prompt": {"id": "pmpt_1"}}, "prompt"),
    ({"background": True}, "background"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]},
     "input[0].content[0].image_url"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input[0].content[0].type"),
    ({"input": [{"role": "assistant", "content": "hi"}, {"type": "function_call_output", "call_id": "c9",
                                                         "output": "x"}]}, "input[1].call_id"),
    ({"include": ["message.output_text.logprobs"]}, "include[0]"),
    ({"reasoning": {"effort": "high"}}, "reasoning.effort"),
    ({"truncation": "auto"}, "truncation"),
    ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format"),
    ({"metadata": {"k": "v" * 513}}, "metadata"),
    ({"tool_choice": {"type": "file_search"}}, "tool_choice"),
    ({"input": [1]}, "input"),
])
def test_what_cannot_be_honoured_is_refused_by_its_field(front, body: dict, param: str) -> None:
    client, _ = front
    got = client.post("/v1/responses", json={"model": "auto", "input": "Hi", **body})
    assert got.status_code == 400, got.text
    assert got.json()["error"]["param"] == param


def test_what_changes_nothing_is_accepted(front) -> None:
    client, router = front
    router.script = [said("Hi.")]
    noops = {"metadata": {"a": "b"}, "user": "u", "truncation": "disabled", "include": ["reasoning.encrypted_content"],
             "reasoning": {"effort": None}, "top_logprobs": 0,
             "prompt_cache_key": "k", "service_tier": "auto", "safety_identifier": "s", "store": True,
             "background": False, "parallel_tool_calls": True, "text": {"format": {"type": "text"}}}
    assert client.post("/v1/responses", json={"model": "auto", "input": "Hi", **noops}).status_code == 200


def test_the_routers_refusal_names_the_responses_field(front) -> None:
    client, router = front
    router.refuse = WireError(ErrorKind.BAD_INPUT, "options.sampling_parameters.max_tokens: 99999 exceeds the limit "
                              "of 2048", "options.sampling_parameters.max_tokens")
    got = client.post("/v1/responses", json={"model": "auto", "input": "Hi", "max_output_tokens": 99999})
    assert got.status_code == 400 and got.json()["error"]["param"] == "max_output_tokens"


def test_the_memory_store_keeps_the_newest() -> None:
    async def run(store: MemoryStore, sizes: dict[str, int]) -> list:
        for rid, size in sizes.items():
            await store.put("o", rid, {"response": {"id": rid}, "turns": [{"content": "x" * size}]})
        return [r and r["response"]["id"] for r in [await store.get("o", rid) for rid in sizes]]

    assert asyncio.run(run(MemoryStore(limit=2), {"a": 1, "b": 1, "c": 1})) == [None, "b", "c"]
    assert asyncio.run(run(MemoryStore(max_bytes=3000), {"a": 1000, "b": 1000, "c": 1000})) == [None, "b", "c"]
    with pytest.raises(ValueError, match="responses store"):
        open_store("sqlite:///x")


def test_a_stream_with_text_and_a_call_numbers_its_items(front) -> None:
    client, router = front
    router.script = [RouterAnswer("Let me look.", finish_reason="tool_calls", usage=Usage(30, 9), tool_calls=[CALL])]
    events = events_of(client.post("/v1/responses", json={"model": "auto", "input": "Weather?", "tools": [WEATHER],
                                                          "stream": True}).text)
    added = [(e["output_index"], e["item"]["type"]) for e in events if e["type"] == "response.output_item.added"]
    assert added == [(0, "message"), (1, "function_call")]
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["message", "function_call"]
    assert final["output"][0]["content"][0]["text"] == "Let me look."


def test_an_input_image_is_the_routers_image(front) -> None:
    client, router = front
    router.script = [said("A cat.")]
    png = "data:image/png;base64,iVBORw0KGgo="
    got = client.post("/v1/responses", json={"model": "auto", "top_p": 0.5, "parallel_tool_calls": False, "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "What is this?"},
                                     {"type": "input_image", "image_url": png}]}]})
    assert got.status_code == 200, got.text
    sent = router.calls[0]
    assert sent.attachments["image"] == b"\x89PNG\r\n\x1a\n" and sent.text == "What is this?"
    assert sent.options.sampling_parameters.top_p == 0.5 and sent.options.parallel_tool_calls is False


def test_bodies_and_events_are_the_sdks_own_types(front) -> None:
    from openai.types.responses import Response

    client, router = front
    router.script = [said("Paris."), RouterAnswer("", finish_reason="tool_calls", usage=Usage(3, 2), tool_calls=[CALL])]
    Response.model_validate(client.post("/v1/responses", json={"model": "auto", "input": "Capital?"}).json())
    events = events_of(client.post("/v1/responses", json={"model": "auto", "input": "Weather?", "tools": [WEATHER],
                                                           "stream": True}).text)
    for event in events:
        if "response" in event:
            Response.model_validate(event["response"])


@pytest.mark.parametrize("route", ["/v1/responses", "/v1/chat/completions", "/v1/messages", "/v1/embeddings"])
def test_half_a_utf16_pair_is_refused_not_a_server_error(front, route: str) -> None:
    client, _ = front
    body = b'{"model": "auto", "input": "a\\ud800b", "messages": [{"role": "user", "content": "a\\ud800b"}]}'
    got = client.post(route, content=body, headers={"Content-Type": "application/json"})
    assert got.status_code == 400 and "lone surrogate" in got.text
