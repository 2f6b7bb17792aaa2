"""OpenAI's Responses API on the real server, through the official clients unmodified: the openai SDK's
`responses.create` (plain, streamed, a function tool whose output goes back with
`previous_response_id`, `text.format` json_schema through `responses.parse`), stored responses
fetched and deleted, and the OpenAI Agents SDK running one agent with one function tool to its
final answer (its trace export switched off: it would call a host we cannot reach)."""
from __future__ import annotations

import json
from typing import Iterator

import jsonschema
import openai
import pytest
from pydantic import BaseModel

from launcher import FrontProcess, TritonServer, free_port
from openai_front import RESPONSES_STORE_ENV

from .conftest import LLM
from .services import KEY, RedisServer, error_of, start_front, stop_front

pytestmark = pytest.mark.integration
AGENT = "qwen2_5_coder_1_5b_instruct"  # the CPU profile's model for tools (the policy gives them the strongest)
GREEDY = {"temperature": 0, "max_output_tokens": 48}
WEATHER = {"type": "function", "name": "get_weather", "description": "The current weather in a city.",
           "parameters": {"type": "object", "additionalProperties": False, "required": ["city"],
                          "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 40}}}}


@pytest.fixture(scope="module")
def front(router: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontProcess]:
    proc = start_front(router, tmp_path_factory.mktemp("responses"))
    yield proc
    stop_front(proc)


@pytest.fixture(scope="module")
def sdk(front: FrontProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{front.url}/v1", api_key=KEY, max_retries=0, timeout=300)


def test_a_response_is_answered_stored_fetched_and_deleted(sdk: openai.OpenAI) -> None:
    got = sdk.responses.create(model="auto", input="What is the capital of France?", **GREEDY)
    assert got.status in ("completed", "incomplete") and "Paris" in got.output_text
    assert got.model == LLM and got.to_dict()["routing"]["model"] == LLM and got.metadata["tmr_model"] == LLM
    assert got.usage.input_tokens > 0 and 0 < got.usage.output_tokens <= 48
    assert got.usage.total_tokens == got.usage.input_tokens + got.usage.output_tokens
    assert sdk.responses.retrieve(got.id).output_text == got.output_text
    sdk.responses.delete(got.id)
    assert error_of(sdk.responses.retrieve, got.id).status_code == 404


def test_a_streamed_response_is_the_event_sequence_and_its_deltas_the_text(sdk: openai.OpenAI) -> None:
    with sdk.responses.stream(model="auto", input="What is the capital of France?", **GREEDY) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete") and "response.output_text.delta" in kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == final.output_text and "Paris" in final.output_text
    assert sdk.responses.retrieve(final.id).output_text == final.output_text


def test_a_function_call_and_its_output_sent_back_with_previous_response_id(sdk: openai.OpenAI) -> None:
    asked = sdk.responses.create(model="auto", input="What is the weather like in Paris right now?", tools=[WEATHER],
                                 tool_choice={"type": "function", "name": "get_weather"}, temperature=0,
                                 max_output_tokens=80)
    calls = [item for item in asked.output if item.type == "function_call"]
    assert asked.model == AGENT and len(calls) == 1 and calls[0].name == "get_weather"
    jsonschema.validate(json.loads(calls[0].arguments), WEATHER["parameters"])
    result = [{"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny, 21 degrees Celsius."}]
    answered = sdk.responses.create(model="auto", previous_response_id=asked.id, input=result, tools=[WEATHER],
                                    tool_choice="none", temperature=0, max_output_tokens=60)
    assert answered.previous_response_id == asked.id and answered.output_text.strip()
    # The stored conversation went with it: without it, the output answers no call the router knows of.
    alone = error_of(sdk.responses.create, model="auto", input=result, tools=[WEATHER], tool_choice="none")
    assert alone.status_code == 400 and alone.body["param"] == "input[0].call_id"


def test_two_fronts_on_one_redis_share_their_stored_responses(router: TritonServer, tmp_path) -> None:
    redis = RedisServer(tmp_path)
    fronts = []
    try:
        for i in range(2):
            fronts.append(FrontProcess(router.grpc_url, port=free_port(), host="127.0.0.1", api_key=KEY,
                                       log_file=tmp_path / f"front{i}.log",
                                       env={RESPONSES_STORE_ENV: redis.url}).start())
        one, two = (openai.OpenAI(base_url=f"{f.url}/v1", api_key=KEY, max_retries=0, timeout=300) for f in fronts)
        first = one.responses.create(model="auto", input="What is the capital of France?", **GREEDY)
        assert two.responses.retrieve(first.id).output_text == first.output_text
        assert redis.client.keys(f"tmr:response:*:{first.id}")  # kept in Redis, not in a front's memory
        then = two.responses.create(model="auto", input="And of Italy?", previous_response_id=first.id, **GREEDY)
        assert then.usage.input_tokens > first.usage.input_tokens
        two.responses.delete(first.id)
        assert error_of(one.responses.retrieve, first.id).status_code == 404
    finally:
        for front in fronts:
            stop_front(front)
        redis.stop()


class City(BaseModel):
    city: str
    country: str


def test_text_format_json_schema_through_parse(sdk: openai.OpenAI) -> None:
    got = sdk.responses.parse(model="auto", input="Which city is the Eiffel Tower in, and which country?",
                              text_format=City, temperature=0, max_output_tokens=80)
    jsonschema.validate(json.loads(got.output_text), City.model_json_schema())
    assert isinstance(got.output_parsed, City) and got.output_parsed.city.strip()


def test_what_cannot_be_honoured_is_a_400_naming_the_field(sdk: openai.OpenAI) -> None:
    refused = error_of(sdk.responses.create, model="auto", input="Hi", background=True)
    assert refused.status_code == 400 and refused.body["param"] == "background"
    refused = error_of(sdk.responses.create, model="auto", input="Hi", max_output_tokens=10**6)
    assert refused.status_code == 400 and refused.body["param"] == "max_output_tokens"


def test_the_agents_sdk_runs_an_agent_with_a_tool_to_its_final_answer(front: FrontProcess) -> None:
    import agents

    agents.set_tracing_disabled(True)  # its exporter would call OpenAI's host
    asked: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        asked.append(city)
        return f"Sunny, 21 degrees Celsius in {city}."

    client = openai.AsyncOpenAI(base_url=f"{front.url}/v1", api_key=KEY, max_retries=0, timeout=300)
    agent = agents.Agent(name="weather", instructions="Answer with the weather tool's result in one sentence.",
                         tools=[get_weather], model=agents.OpenAIResponsesModel(model="auto", openai_client=client),
                         model_settings=agents.ModelSettings(tool_choice="required", temperature=0, max_tokens=80))
    result = agents.Runner.run_sync(agent, "What is the weather like in Paris right now?", max_turns=4)
    assert asked and asked[0].strip()
    assert isinstance(result.final_output, str) and result.final_output.strip()
