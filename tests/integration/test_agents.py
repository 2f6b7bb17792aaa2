"""Agents on the real server, through the OpenAI front: structured output (JSON schemas, JSON
objects, greedy and sampled), tool calls forced and streamed, a tool's result sent back, the OpenAI
SDK's `parse` and LangChain's `with_structured_output` / `bind_tools`, and bad tools or schemas
refused by field; through the router, what `parallel_tool_calls` and `tool_choice: "none"` do with
an answer that holds two calls. Every answer is checked from outside: parsed as JSON and validated
with jsonschema."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Literal

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from client import RouterClient
from launcher import FrontProcess, TritonServer

from .conftest import LLM
from .observe import metric
from .services import KEY, error_of, start_front, stop_front

pytestmark = pytest.mark.integration
# The CPU profile's model for tools and structured answers (registry: the policy gives them the strongest).
AGENT = "qwen2_5_coder_1_5b_instruct"
CASES = json.loads((Path(__file__).parents[1] / "data" / "structured_cases.json").read_text())
GREEDY = {"temperature": 0, "max_tokens": 160}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city.",
    "parameters": {"type": "object", "additionalProperties": False, "required": ["city", "unit"],
                   "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 40},
                                  "unit": {"enum": ["celsius", "fahrenheit"]}}}}}
CONVERT = {"type": "function", "function": {
    "name": "convert_currency", "description": "Convert an amount of money between currencies.",
    "parameters": {"type": "object", "additionalProperties": False, "required": ["amount", "source", "target"],
                   "properties": {"amount": {"type": "number", "minimum": 0},
                                  "source": {"enum": ["USD", "EUR", "INR", "JPY"]},
                                  "target": {"enum": ["USD", "EUR", "INR", "JPY"]}}}}}
TOOLS = [WEATHER, CONVERT]
PARAMETERS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
PARIS = [{"role": "user", "content": "What is the weather like in Paris right now?"}]
# An answer that is two Hermes tool calls whatever the model (the engine's regex constraint, passed
# through the router's sampling_parameters): the model picks the cities, the form is fixed.
_CALL = (r'<tool_call>\{"name": "get_weather", "arguments": '
         r'\{"city": "[A-Z][a-z]{2,12}", "unit": "celsius"\}\}</tool_call>')
TWO_CALLS = {"temperature": 0, "max_tokens": 160, "structured_outputs": {"regex": f"{_CALL}\\n{_CALL}"}}


@pytest.fixture(scope="module")
def front(router: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontProcess]:
    proc = start_front(router, tmp_path_factory.mktemp("agents"))
    yield proc
    stop_front(proc)


@pytest.fixture(scope="module")
def sdk(front: FrontProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{front.url}/v1", api_key=KEY, max_retries=0, timeout=600)


def json_schema(case: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": case["name"], "schema": case["schema"], "strict": True}}


def valid_calls(calls: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, arguments) of each call, its arguments validated against its tool's parameters."""
    out = []
    for call in calls:
        arguments = json.loads(call.function.arguments)
        jsonschema.validate(arguments, PARAMETERS[call.function.name])
        out.append((call.function.name, arguments))
    return out


def test_every_json_schema_answer_validates(sdk: openai.OpenAI) -> None:
    """55 requests over 11 schemas (nested objects, enums, bounded arrays, ranged integers, booleans;
    prompts in five languages), sent together so that constrained rows share the LLM's batches. The
    grammar is the engine's, whatever the model: the 135M model proves it in a time any CPU affords
    (55 answers at once from the 1.5B outran the router's 120 s call deadline on a busy core); the
    tests below take "auto", and so the 1.5B."""
    requests = [(case, prompt) for case in CASES for prompt in case["prompts"]]
    assert len(requests) >= 50 and len(CASES) >= 10

    def ask(item: tuple[dict, str]) -> tuple[str, str, str]:
        case, prompt = item
        answer = sdk.chat.completions.create(model=LLM, messages=[{"role": "user", "content": prompt}],
                                             response_format=json_schema(case), **GREEDY)
        return answer.choices[0].message.content, answer.choices[0].finish_reason, answer.model

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, requests))
    for (case, prompt), (content, finish, model) in zip(requests, answers):
        assert finish == "stop" and model == LLM, (prompt, finish, content)
        jsonschema.validate(json.loads(content), case["schema"])


def test_sampled_json_schema_answers_validate(sdk: openai.OpenAI) -> None:
    """At temperature 1 (the OpenAI API's default), several seeds sent together: a sampled row keeps
    to its grammar as a greedy one does. The schemas bound every value, so max_tokens never cuts them."""
    cases = [c for c in CASES if c["name"] in ("person", "sentiment", "event")]
    requests = [(case, seed) for case in cases for seed in (1, 2, 3)]

    def ask(item: tuple[dict, int]) -> tuple[str, str]:
        case, seed = item
        answer = sdk.chat.completions.create(model="auto", messages=[{"role": "user", "content": case["prompts"][0]}],
                                             response_format=json_schema(case), temperature=1, seed=seed,
                                             max_tokens=500)
        return answer.choices[0].message.content, answer.choices[0].finish_reason

    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(ask, requests))
    for (case, seed), (content, finish) in zip(requests, answers):
        assert finish == "stop", (case["name"], seed, finish, content)
        jsonschema.validate(json.loads(content), case["schema"])
    assert len(set(answers)) > len(cases), answers  # the seeds were sampled, not all alike


def test_a_json_object_is_asked_for_and_given(sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.create(model="auto", response_format={"type": "json_object"}, **GREEDY,
                                         messages=[{"role": "user", "content": "Describe a cat in JSON."}])
    assert isinstance(json.loads(answer.choices[0].message.content), dict)


@pytest.mark.parametrize("choice, name", [
    ("required", None),
    ({"type": "function", "function": {"name": "convert_currency"}}, "convert_currency"),
], ids=["required", "convert_currency"])
def test_a_forced_tool_call_has_arguments_that_validate(sdk: openai.OpenAI, choice, name) -> None:
    answer = sdk.chat.completions.create(model="auto", messages=PARIS, tools=TOOLS, tool_choice=choice, **GREEDY)
    message, finish = answer.choices[0].message, answer.choices[0].finish_reason
    assert finish == "tool_calls" and message.tool_calls, message
    calls = valid_calls(message.tool_calls)
    assert all(c.id.startswith("call_") and c.type == "function" for c in message.tool_calls)
    assert name is None or [n for n, _ in calls] == [name] * len(calls)


def test_streamed_tool_calls_assemble_to_the_whole_answers(sdk: openai.OpenAI) -> None:
    """The SDK's own stream helper joins the deltas; greedy decoding makes both answers the same."""
    body = {"model": "auto", "messages": PARIS, "tools": TOOLS, "tool_choice": "required", **GREEDY}
    whole = sdk.chat.completions.create(**body).choices[0]
    with sdk.chat.completions.stream(**body) as stream:
        chunks = [event.chunk for event in stream if event.type == "chunk"]
        streamed = stream.get_final_completion().choices[0]
    assert streamed.finish_reason == whole.finish_reason == "tool_calls"
    assert valid_calls(streamed.message.tool_calls) == valid_calls(whole.message.tool_calls)
    # OpenAI's shape: the call's id and name first, then its arguments in pieces.
    deltas = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert deltas[0].id and deltas[0].function.name and not deltas[0].function.arguments
    assert all(d.id is None and d.function.name is None for d in deltas[1:] if d.index == 0)


def test_a_tool_result_sent_back_gets_an_answer(sdk: openai.OpenAI) -> None:
    first = sdk.chat.completions.create(model="auto", messages=PARIS, tools=[WEATHER], tool_choice="required",
                                        **GREEDY).choices[0].message
    (call,) = first.tool_calls[:1]
    history = [*PARIS, first.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id, "content": "18 degrees Celsius and sunny"}]
    answer = sdk.chat.completions.create(model="auto", messages=history, tools=[WEATHER], tool_choice="none",
                                         temperature=0, max_tokens=48)
    reply = answer.choices[0]
    assert reply.message.tool_calls is None and reply.message.content.strip(), reply
    assert "18" in reply.message.content or "sunny" in reply.message.content.lower(), reply.message.content
    # The tool's result was part of what the model read: the prompt grew by it.
    without = sdk.chat.completions.create(model="auto", messages=history[:-1] + [{**history[-1], "content": "ok"}],
                                          tools=[WEATHER], tool_choice="none", temperature=0, max_tokens=1)
    assert answer.usage.prompt_tokens > without.usage.prompt_tokens


def two_call_answer(router: TritonServer, **options: Any) -> Any:
    """The router's answer to a request whose text is two tool calls (TWO_CALLS), with `options`."""
    client = RouterClient(router.grpc_url, "grpc")
    try:
        return client.route(PARIS[0]["content"], {"model": LLM, "sampling_parameters": TWO_CALLS, **options})
    finally:
        client.close()


@pytest.mark.parametrize("parallel", [True, False])
def test_parallel_tool_calls_false_never_answers_with_two_calls(router: TritonServer, parallel: bool) -> None:
    answer = two_call_answer(router, tools=TOOLS, tool_choice="auto", parallel_tool_calls=parallel)
    calls = answer.tool_calls or []
    assert answer.finish_reason == "tool_calls" and len(calls) == (2 if parallel else 1), answer
    for call in calls:
        assert call["function"]["name"] == "get_weather", call
        jsonschema.validate(json.loads(call["function"]["arguments"]), PARAMETERS["get_weather"])


def test_tool_choice_none_offers_no_tools_and_makes_no_calls(router: TritonServer) -> None:
    """The model's text is left as it is, and its prompt is that of the request without tools."""
    answer = two_call_answer(router, tools=TOOLS, tool_choice="none")
    without = two_call_answer(router)
    assert answer.tool_calls is None and answer.text.count("<tool_call>") == 2, answer
    assert answer.usage.prompt_tokens == without.usage.prompt_tokens, (answer.usage, without.usage)


class Book(BaseModel):
    title: str = Field(max_length=60)
    author: str = Field(max_length=40)
    year: int = Field(ge=1400, le=2030)
    genre: Literal["fiction", "science", "history", "poetry"]
    in_print: bool


def test_the_sdks_parse_gives_a_validated_object(sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.parse(model="auto", response_format=Book, **GREEDY,
                                        messages=[{"role": "user", "content": "Describe the novel Dracula."}])
    assert isinstance(answer.choices[0].message.parsed, Book)


def test_langchain_structured_output_and_bound_tools(front: FrontProcess) -> None:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def get_weather(city: str, unit: Literal["celsius", "fahrenheit"]) -> str:
        """The current weather in a city."""
        return "18 degrees"

    @tool
    def convert(amount: float, currency: str) -> str:
        """Convert an amount of money to US dollars."""
        return "22 USD"

    class Capital(BaseModel):
        city: str
        country: str

    llm = ChatOpenAI(base_url=f"{front.url}/v1", api_key=KEY, model="auto", max_retries=0, timeout=600,
                     temperature=0, max_tokens=160)
    book = llm.with_structured_output(Book, method="json_schema").invoke("Describe the novel Frankenstein.")
    assert isinstance(book, Book)
    capital = llm.with_structured_output(Capital, method="json_schema").invoke("What is the capital of Japan?")
    assert "tokyo" in capital.city.lower() and "japan" in capital.country.lower(), capital
    message = llm.bind_tools([get_weather], tool_choice="get_weather").invoke("Is it raining in Oslo?")
    assert [c["name"] for c in message.tool_calls] == ["get_weather"] * len(message.tool_calls) != []
    for call in message.tool_calls:
        jsonschema.validate(call["args"], get_weather.tool_call_schema.model_json_schema())
    # LangChain's schema allows extra keys: the grammar closes it, so the call ends well before max_tokens.
    short = ChatOpenAI(base_url=f"{front.url}/v1", api_key=KEY, model="auto", max_retries=0, timeout=600,
                       temperature=0, max_tokens=120)
    message = short.bind_tools([convert], tool_choice="convert").invoke("Convert 20 euros to dollars.")
    assert message.response_metadata["finish_reason"] == "tool_calls" and message.response_metadata["model_name"] == AGENT
    [call] = message.tool_calls
    assert call["name"] == "convert" and set(call["args"]) == {"amount", "currency"}
    assert isinstance(call["args"]["amount"], (int, float))


def test_bad_tools_and_schemas_are_400s_naming_the_field_and_reach_no_engine(sdk: openai.OpenAI,
                                                                              server: TritonServer) -> None:
    def served() -> float:
        # Triton's own counts, a series from each text model's load on: none means not loaded, so unserved.
        return sum(metric(server, "nv_inference_request_success", model=m, absent=0.0) for m in (LLM, AGENT))

    create, before = sdk.chat.completions.create, served()
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "minProperties": "two"}}}
    err = error_of(create, model="auto", messages=PARIS, response_format=bad)
    assert err.status_code == 400 and err.body["param"].startswith("response_format.json_schema.schema"), err.body
    err = error_of(create, model="auto", messages=PARIS, tools=TOOLS,
                   tool_choice={"type": "function", "function": {"name": "book_flight"}})
    assert err.status_code == 400 and err.body["param"] == "tool_choice.function.name" and "get_weather" in err.message
    err = error_of(create, model="auto", messages=PARIS, tools=[WEATHER, WEATHER])
    assert err.status_code == 400 and err.body["param"] == "tools[1].function.name"
    orphan = [*PARIS, {"role": "assistant", "content": "Let me see."},
              {"role": "tool", "tool_call_id": "call_nobody", "content": "18 C"}]
    err = error_of(create, model="auto", messages=orphan, tools=TOOLS)
    assert err.status_code == 400 and err.body["param"] == "messages[2].tool_call_id"
    err = error_of(create, model="auto", messages=PARIS, tools=[WEATHER] * 65)
    assert err.status_code == 400 and err.body["param"].startswith("tools")
    assert served() == before  # nothing reached a text model
