"""Tools and output constraints in the router: validation that names the field, the constraint a
target gets, the Hermes prompt for templates without tools, and the one tool-call parser."""
from __future__ import annotations

import json

import pytest

from model_router.errors import InputError
from model_router.registry import load_registry
from model_router.request import make_request
from model_router.routing.targets import TextGeneration
from model_router.tools.constraint import structured_outputs
from model_router.tools.parser import parse, tool_calls

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def request(**options):
    return make_request("What is the weather in Paris?", {}, json.dumps(options))


@pytest.mark.parametrize("options, field", [
    ({"tools": [WEATHER, WEATHER]}, "options.tools[1].function.name"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "options.tool_choice.function.name"),
    ({"tools": [WEATHER], "tool_choice": "sometimes"}, "options.tool_choice"),
    ({"tool_choice": "required"}, "options.tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "options.tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 5}}}]},
     "options.tools[0].function.parameters"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nope"}}}},
     "options.response_format.json_schema.schema"),
    ({"response_format": {"type": "json_schema"}}, "options.response_format.json_schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "string", "pattern": "(?=a)b"}}}},
     "options.response_format.json_schema.schema"),  # valid JSON Schema, but no grammar engine compiles it
    ({"response_format": {"type": "yaml"}}, "options.response_format.type"),
    ({"tools": [dict(WEATHER, function=dict(WEATHER["function"], name=f"f{i}")) for i in range(65)]}, "options.tools"),
])
def test_bad_tools_and_formats_are_refused_by_name(options, field) -> None:
    with pytest.raises(InputError) as raised:
        request(**options)
    assert raised.value.field == field, raised.value
    if "(?=a)b" in json.dumps(options):  # JSON Schema allows look-ahead; the grammar engine does not
        assert "grammar engine cannot compile" in str(raised.value)


def test_a_tool_turn_must_answer_an_earlier_call() -> None:
    turns = [{"role": "user", "content": "Weather?"},
             {"role": "assistant", "content": "", "tool_calls": [
                 {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
             {"role": "tool", "tool_call_id": "call_2", "content": "sunny"}]
    with pytest.raises(InputError) as raised:
        make_request("", {}, json.dumps({"tools": [WEATHER]}), messages=json.dumps(turns))
    assert raised.value.field == "messages[2].tool_call_id"
    turns[2]["tool_call_id"] = "call_1"
    req = make_request("", {}, json.dumps({"tools": [WEATHER]}), messages=json.dumps(turns))
    assert req.text == "Weather?" and req.messages[-1].role == "tool"


def test_a_forced_call_is_constrained_to_the_tool_call_object() -> None:
    named = request(tools=[WEATHER, TIME], tool_choice={"type": "function", "function": {"name": "get_weather"}})
    c = structured_outputs(tuple(named.options.tools), named.options.tool_choice, None)
    assert c["json"]["properties"]["name"] == {"const": "get_weather"}
    required = request(tools=[WEATHER, TIME], tool_choice="required").options
    assert len(structured_outputs(tuple(required.tools), "required", None)["json"]["anyOf"]) == 2
    assert structured_outputs(tuple(required.tools), "auto", None) is None
    fmt = request(response_format={"type": "json_object"}).options
    assert structured_outputs((), None, fmt.response_format) == {"json_object": True}


def test_smollm2_gets_the_tools_in_hermes_format_and_the_constraint_as_vllm_takes_it() -> None:
    spec = load_registry().model("smollm2_135m_instruct")
    tensors, _ = TextGeneration().for_request(spec, request(tools=[WEATHER], tool_choice="required"), "en", True, None)
    turns = json.loads(tensors["messages"][0])
    assert turns[0]["role"] == "system" and "<tools>" in turns[0]["content"] and "get_weather" in turns[0]["content"]
    sampling = json.loads(tensors["sampling_parameters"][0])
    assert json.loads(sampling["structured_outputs"])["json"]["properties"]["name"] == {"const": "get_weather"}
    plain, _ = TextGeneration().for_request(spec, request(), "en", False, None)
    assert "messages" not in plain and "structured_outputs" not in json.loads(plain["sampling_parameters"][0])


def test_the_parser_reads_hermes_blocks_and_forced_objects() -> None:
    names = {"get_weather", "get_time"}
    got = parse('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
                names)
    assert got.content == "Let me check." and json.loads(got.calls[0]["function"]["arguments"]) == {"city": "Paris"}
    assert got.calls[0]["id"].startswith("call_") and got.calls[0]["type"] == "function"
    assert parse('{"name": "get_time", "arguments": {}}', names, forced=True).calls[0]["function"]["name"] == "get_time"
    assert parse('<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>', names).calls == []  # not offered
    assert parse("It is sunny.", names).calls == []
    two = '<tool_call>{"name": "get_time", "arguments": {}}</tool_call><tool_call>{"name": "get_time", "arguments": {}}'
    assert len(parse(two, names).calls) == 2 and len(parse(two, names, parallel=False).calls) == 1


def test_tool_calls_only_when_offered_and_not_refused() -> None:
    text = '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
    assert tool_calls(request().options, text) == (text, None)
    assert tool_calls(request(tools=[WEATHER], tool_choice="none").options, text) == (text, None)
    words, calls = tool_calls(request(tools=[WEATHER]).options, text)
    assert words == "" and calls[0]["function"]["name"] == "get_weather"


def test_a_vllm_model_gets_the_constraint_as_the_vllm_backend_reads_it() -> None:
    """vLLM backend r26.01 builds StructuredOutputsParams(**json.loads(sampling_parameters["structured_outputs"])):
    the router sends that key as JSON text, and renders tools itself for a model whose template takes them."""
    spec = load_registry().model("qwen2_5_7b_instruct").model_copy(update={"tokenizer": "/nonexistent/tok"})
    fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    tensors, outputs = TextGeneration().for_request(spec, request(response_format=fmt), "en", False, None)
    sampling = json.loads(tensors["sampling_parameters"][0])
    assert isinstance(sampling["structured_outputs"], str)
    assert json.loads(sampling["structured_outputs"]) == {"json": fmt["json_schema"]["schema"]}
    assert "messages" not in tensors and {"finish_reason", "num_output_tokens"} <= set(outputs)
