"""Tools and output constraints in the router: validation that names the field, the constraint a
target gets (its objects closed, checked with the engines' grammar compiler), the Hermes prompt for
templates without tools, and the one tool-call parser: the shapes models write calls in, and calls
that max_tokens cut."""
from __future__ import annotations

import json

import pytest

from model_router.contract.router import RouterRequest
from model_router.errors import InputError
from model_router.registry import load_registry
from model_router.routing.targets import TextGeneration
from model_router.contract.sampling import SamplingParams, StructuredOutputs, parse_sampling_parameters
from model_router.tools.constraint import structured_outputs
from model_router.tools.parser import Answer, parse, read_answer

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def request(**options):
    return RouterRequest.of("What is the weather in Paris?", json.dumps(options), {})


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
        RouterRequest.of("", json.dumps({"tools": [WEATHER]}), {}, messages=json.dumps(turns))
    assert raised.value.field == "messages[2].tool_call_id"
    turns[2]["tool_call_id"] = "call_1"
    req = RouterRequest.of("", json.dumps({"tools": [WEATHER]}), {}, messages=json.dumps(turns))
    assert req.text == "Weather?" and req.messages[-1].role == "tool"
    # The call is typed in the router and travels in OpenAI's JSON shape.
    assert req.messages[1].tool_calls[0].function.name == "get_weather"
    assert json.loads(req.encode()["messages"][0]) == turns


@pytest.mark.parametrize("call, field", [
    ({"id": "call_1", "function": {"name": "f"}}, "messages[1].tool_calls[0].function.arguments"),
    ({"id": "call_1", "function": {"name": "f", "arguments": {"a": 1}}}, "messages[1].tool_calls[0].function.arguments"),
    ({"id": "", "function": {"name": "f", "arguments": "{}"}}, "messages[1].tool_calls[0].id"),
    ({"id": "call_1", "function": {"name": "f", "arguments": "{}", "extra": 1}}, "messages[1].tool_calls[0].function.extra"),
])
def test_a_bad_call_in_a_conversation_is_refused_naming_its_field(call, field) -> None:
    turns = [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "", "tool_calls": [call]},
             {"role": "user", "content": "And?"}]
    with pytest.raises(InputError) as raised:
        RouterRequest.of("", "{}", {}, messages=json.dumps(turns))
    assert raised.value.field == field, raised.value


def test_a_forced_call_is_constrained_to_the_tool_call_object() -> None:
    named = request(tools=[WEATHER, TIME], tool_choice={"type": "function", "function": {"name": "get_weather"}})
    c = structured_outputs(tuple(named.options.tools), named.options.tool_choice, None)
    assert c.json_schema["properties"]["name"] == {"const": "get_weather"}
    required = request(tools=[WEATHER, TIME], tool_choice="required").options
    assert len(structured_outputs(tuple(required.tools), "required", None).json_schema["anyOf"]) == 2
    assert structured_outputs(tuple(required.tools), "auto", None) is None
    fmt = request(response_format={"type": "json_object"}).options
    assert structured_outputs((), None, fmt.response_format) == StructuredOutputs(json_object=True)


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
    for refused in (request().options, request(tools=[WEATHER], tool_choice="none").options):
        assert read_answer(refused, text, "stop") == Answer(text, None, "stop")
    got = read_answer(request(tools=[WEATHER]).options, text, "stop")
    assert (got.content, got.finish_reason) == ("", "tool_calls") and got.calls[0]["function"]["name"] == "get_weather"


def test_a_vllm_model_gets_the_constraint_as_the_vllm_backend_reads_it(tmp_path) -> None:
    """vLLM backend r26.01 builds StructuredOutputsParams(**json.loads(sampling_parameters["structured_outputs"])):
    the router sends that key as JSON text, and renders tools itself for a model whose template takes them."""
    from .chat_templates import tiny_tokenizer

    spec = load_registry().model("qwen2_5_7b_instruct").model_copy(
        update={"tokenizer": str(tiny_tokenizer(tmp_path / "tok"))})
    fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    tensors, outputs = TextGeneration().for_request(spec, request(response_format=fmt), "en", False, None)
    sampling = json.loads(tensors["sampling_parameters"][0])
    assert isinstance(sampling["structured_outputs"], str)
    assert json.loads(sampling["structured_outputs"]) == {"json": {**fmt["json_schema"]["schema"],
                                                                   "additionalProperties": False}}
    assert "messages" not in tensors and {"finish_reason", "num_output_tokens"} <= set(outputs)


# -- the shapes models write calls in ------------------------------------------------------------------
NAMES = {"get_weather", "get_time"}


def called(text: str, **kwargs) -> tuple[str, list[tuple[str, dict]]]:
    got = parse(text, NAMES, **kwargs)
    return got.content, [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in got.calls]


@pytest.mark.parametrize("text, content", [
    # Qwen2.5-Coder-1.5B through its own template, tools offered
    ('```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```', ""),
    ('I will look it up.\n```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```\nOne moment.',
     "I will look it up.\n\nOne moment."),
    ('```\n{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}\n```', ""),  # arguments as JSON text
    ('{"name": "get_weather", "arguments": {"city": "Paris"}}', ""),
    ('Calling: {"name": "get_weather", "arguments": {"city": "Paris"}} now.', "Calling: now."),
    ('<tool_call>\n```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```\n</tool_call>', ""),
])
def test_a_call_is_read_fenced_bare_or_tagged(text, content) -> None:
    assert called(text) == (content, [("get_weather", {"city": "Paris"})])


@pytest.mark.parametrize("text", [
    '```json\n{"name": "get_weather"}\n```',                                   # no arguments
    '{"name": "get_weather", "arguments": 3}',                                  # arguments not an object
    '{"name": "get_weather", "arguments": "not json"}',
    '```json\n{"name": "rm_rf", "arguments": {}}\n```',                        # not offered
    '{"tool": {"name": "get_weather", "arguments": {"city": "Paris"}}}',        # data inside another object
    '```python\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',  # code, not a call
    '[{"name": "get_weather", "arguments": {}}, 3]',                             # an array not all calls
    '{"name": "get_weather", "arguments": {"city": "Paris"}',                    # not JSON (and not cut)
    'Use {"name": ..., "arguments": {...}} to call a tool.',
])
def test_text_that_is_not_a_call_object_stays_text(text) -> None:
    assert called(text) == (text, [])
    assert read_answer(request(tools=[WEATHER]).options, text, "stop") == Answer(text, None, "stop")


def test_parallel_calls_of_every_shape_and_parallel_tool_calls_false_keeps_the_first() -> None:
    fenced = ('```json\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n```\n'
              '```json\n{"name": "get_time", "arguments": {}}\n```')
    array = '```json\n[{"name": "get_weather", "arguments": {"city": "Oslo"}}, {"name": "get_time", "arguments": {}}]\n```'
    bare = '{"name": "get_weather", "arguments": {"city": "Oslo"}}\n{"name": "get_time", "arguments": {}}'
    for text in (fenced, array, bare):
        assert called(text) == ("", [("get_weather", {"city": "Oslo"}), ("get_time", {})]), text
        assert called(text, parallel=False) == ("", [("get_weather", {"city": "Oslo"})]), text
    # tags come first: a fenced example beside a tagged call stays the content it is
    mixed = 'e.g. ```json\n{"name": "get_time", "arguments": {}}\n```\n<tool_call>{"name": "get_weather", ' \
            '"arguments": {"city": "Oslo"}}</tool_call>'
    assert called(mixed)[1] == [("get_weather", {"city": "Oslo"})]


# -- the grammar closes the objects a schema leaves open ---------------------------------------------
@pytest.fixture(scope="module")
def accepts():
    """Whether the engines' grammar (transformers and llama.cpp backends: transformers_backend.constraints)
    for a request's constraint takes `text` whole, on a tokenizer of one byte a token."""
    from llguidance import LLMatcher, LLTokenizer
    from llguidance._tokenizer import TokenizerWrapper
    from transformers_backend.constraints import grammar_of

    class Bytes:
        eos_token_id, bos_token_id, special_token_ids = 256, None, [256]
        tokens = [bytes([i]) for i in range(256)] + [b"<eos>"]

        def __call__(self, text):
            return list(text.encode() if isinstance(text, str) else text)

    tokenizer = LLTokenizer(TokenizerWrapper(Bytes()))

    def check(constraint: StructuredOutputs, text: str) -> bool:
        # As the engine reads it: through the sampling parameters' wire form.
        spec = parse_sampling_parameters(SamplingParams(structured_outputs=constraint).wire()).structured_outputs
        assert spec == constraint
        matcher = LLMatcher(tokenizer, grammar_of(spec), log_level=0)
        assert not matcher.is_error(), matcher.get_error()
        return matcher.consume_tokens(list(text.encode())) and matcher.is_accepting()

    return check


# LangChain's schema of `def convert(amount: float, currency: str)` (convert_to_openai_tool): no additionalProperties
CONVERT = {"type": "function", "function": {"name": "convert", "description": "Convert euros to a currency.",
                                            "parameters": {"properties": {"amount": {"type": "number"},
                                                                          "currency": {"type": "string"}},
                                                           "required": ["amount", "currency"], "type": "object"}}}
CALL = '{"name":"convert","arguments":{"amount":12.5,"currency":"USD"}}'  # as the grammar writes it


def test_a_forced_call_may_not_add_keys_its_schema_does_not_list(accepts) -> None:
    opts = request(tools=[CONVERT], tool_choice={"type": "function", "function": {"name": "convert"}}).options
    constraint = structured_outputs(tuple(opts.tools), opts.tool_choice, None)
    assert accepts(constraint, CALL)
    assert not accepts(constraint, CALL[:-2] + ',"note":"x"}}')
    assert not accepts(constraint, CALL[:-1] + ',"note":"x"}')
    assert "additionalProperties" not in opts.tools[0].function.parameters  # the client's schema is theirs


def test_a_json_schema_answer_is_closed_all_the_way_down(accepts) -> None:
    from pydantic import BaseModel

    class Address(BaseModel):
        city: str

    class Person(BaseModel):
        name: str
        home: Address
        visited: list[Address]

    fmt = {"type": "json_schema", "json_schema": {"name": "Person", "schema": Person.model_json_schema()}}
    opts = request(response_format=fmt).options
    constraint = structured_outputs((), None, opts.response_format)
    good = {"name": "Ada", "home": {"city": "Pune"}, "visited": [{"city": "Oslo"}]}
    compact = {"separators": (",", ":")}
    assert accepts(constraint, json.dumps(good, **compact))
    for extra in ({**good, "age": 3}, {**good, "home": {"city": "Pune", "zip": "1"}},
                  {**good, "visited": [{"city": "Oslo", "zip": "1"}]}):
        assert not accepts(constraint, json.dumps(extra, **compact)), extra
    assert opts.response_format.json_schema.schema_ == Person.model_json_schema()


@pytest.mark.parametrize("schema, extra", [
    ({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": True}, {"a": "x", "b": 1}),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "integer"}},
     {"a": "x", "b": 1}),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "b"]}, {"a": "x", "b": 1}),
    ({"type": "object", "allOf": [{"properties": {"a": {"type": "string"}}}, {"properties": {"b": {"type": "integer"}}}]},
     {"a": "x", "b": 1}),
    ({"$defs": {"Base": {"type": "object", "properties": {"a": {"type": "string"}}}},
      "allOf": [{"$ref": "#/$defs/Base"}], "properties": {"b": {"type": "integer"}}, "type": "object"},
     {"a": "x", "b": 1}),
    ({"type": "object", "properties": {"kind": {"type": "string"}},
      "anyOf": [{"properties": {"a": {"type": "string"}}, "required": ["a"]}, {"required": ["b"]}]},
     {"kind": "k", "a": "x"}),
])
def test_objects_that_say_they_take_other_keys_stay_open(accepts, schema, extra) -> None:
    assert accepts(structured_outputs((), None, request(response_format={
        "type": "json_schema", "json_schema": {"schema": schema}}).options.response_format),
        json.dumps(extra, separators=(",", ":")))


# -- an answer cut by max_tokens ---------------------------------------------------------------------
def test_a_forced_call_cut_anywhere_comes_back_as_that_call_with_its_arguments_as_written(accepts) -> None:
    """OpenAI's answer to a call cut by max_tokens: the call, its arguments text as far as it went,
    finish_reason "length"; never the cut JSON as content."""
    named = request(tools=[CONVERT, WEATHER], tool_choice={"type": "function", "function": {"name": "convert"}})
    constraint = structured_outputs(tuple(named.options.tools), named.options.tool_choice, None)
    assert accepts(constraint, CALL)  # the whole call is one the grammar writes
    arguments = CALL[len('{"name":"convert","arguments":'):-1]
    for cut in range(len(CALL)):
        got = read_answer(named.options, CALL[:cut], "length")
        assert (got.content, got.finish_reason) == ("", "length"), CALL[:cut]
        (call,) = got.calls
        assert call["function"]["name"] == "convert" and call["id"].startswith("call_")
        assert arguments.startswith(call["function"]["arguments"]), (CALL[:cut], call)
        if cut >= len(CALL) - 1:
            assert call["function"]["arguments"] == arguments
    whole = read_answer(named.options, CALL, "stop")
    assert whole.finish_reason == "tool_calls" and json.loads(whole.calls[0]["function"]["arguments"]) == \
        {"amount": 12.5, "currency": "USD"}


def test_a_required_call_cut_in_its_name_is_the_one_tool_that_name_begins() -> None:
    required = request(tools=[CONVERT, WEATHER, TIME], tool_choice="required").options
    assert read_answer(required, '{"name":"conv', "length").calls[0]["function"]["name"] == "convert"
    ambiguous = read_answer(required, '{"name":"get_', "length")  # get_weather or get_time: no call invented
    assert (ambiguous.content, ambiguous.calls, ambiguous.finish_reason) == ('{"name":"get_', None, "length")


@pytest.mark.parametrize("text, content", [
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par', ""),
    ('Let me check.\n```json\n{"name": "get_weather", "arguments": {"city": "Par', "Let me check."),
    ('{"name": "get_weather", "arguments": {"city": "Par', ""),
])
def test_a_call_the_model_chose_and_max_tokens_cut_keeps_its_arguments_as_written(text, content) -> None:
    got = read_answer(request(tools=[WEATHER]).options, text, "length")
    assert (got.content, got.finish_reason) == (content, "length")
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in got.calls] == \
        [("get_weather", '{"city": "Par')]


@pytest.mark.parametrize("text", ['The weather in Par', '```json\n{"name": "get_wea', '<tool_call>\n{"name": "get_weather"'])
def test_words_cut_by_max_tokens_stay_words(text) -> None:
    """In free text only a call whose name is whole and whose arguments have begun is one."""
    got = read_answer(request(tools=[WEATHER]).options, text, "length")
    assert (got.content, got.calls, got.finish_reason) == (text, None, "length")


def test_a_json_schema_answer_cut_by_length_is_its_cut_json_as_content() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    got = read_answer(request(response_format=fmt).options, '{"city":"Saint-Rémy-de-Pro', "length")
    assert (got.content, got.calls, got.finish_reason) == ('{"city":"Saint-Rémy-de-Pro', None, "length")
