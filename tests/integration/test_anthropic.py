"""Anthropic's Messages API on the real server, through the official anthropic SDK, unmodified: a
message and its stream, an image block, a tool_use -> tool_result round (whole and streamed), and
errors with their statuses in Anthropic's shape. Greedy and short, so that one core is enough."""
from __future__ import annotations

import base64
import json
from typing import Any, Iterator

import anthropic
import jsonschema
import pytest

from client.samples import text_image
from launcher import FrontProcess, TritonServer

from .conftest import LLM
from .services import KEY, start_front, stop_front

pytestmark = pytest.mark.integration
AGENT = "qwen2_5_coder_1_5b_instruct"  # the CPU profile's model for tools
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
PARIS = [{"role": "user", "content": "What is the weather like in Paris right now?"}]
GREEDY: dict[str, Any] = {"max_tokens": 32, "extra_body": {"temperature": 0}}
WEATHER = {"name": "get_weather", "description": "The current weather in a city.",
           "input_schema": {"type": "object", "additionalProperties": False, "required": ["city", "unit"],
                            "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 40},
                                           "unit": {"enum": ["celsius", "fahrenheit"]}}}}
FORCED = {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}
RAW = ("message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta",
       "message_stop")


@pytest.fixture(scope="module")
def front(router: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontProcess]:
    proc = start_front(router, tmp_path_factory.mktemp("anthropic"))
    yield proc
    stop_front(proc)


@pytest.fixture(scope="module")
def sdk(front: FrontProcess) -> anthropic.Anthropic:
    # No retries: a test sees each answer as the server gave it.
    return anthropic.Anthropic(base_url=front.url, api_key=KEY, max_retries=0, timeout=600)


def test_a_message_answers_with_the_engines_counts_and_the_decision(sdk: anthropic.Anthropic) -> None:
    raw = sdk.messages.with_raw_response.create(model="auto", messages=FRANCE, **GREEDY)
    message = raw.parse()
    assert [b.type for b in message.content] == ["text"] and "Paris" in message.content[0].text, message
    assert message.stop_reason in ("end_turn", "max_tokens") and message.stop_sequence is None
    assert message.usage.input_tokens > 0 and 0 < message.usage.output_tokens <= 32
    decision = json.loads(raw.headers["x-tmr-routing"])
    assert message.model == LLM == decision["model"] and message.routing == decision  # routing: ours
    assert message.id.startswith("msg_") and message.role == "assistant"


def test_a_streamed_message_comes_in_anthropics_event_order(sdk: anthropic.Anthropic) -> None:
    with sdk.messages.stream(model="auto", messages=FRANCE, **GREEDY) as stream:
        events = list(stream)
        final = stream.get_final_message()
    pieces = [e.text for e in events if e.type == "text"]
    assert len(pieces) >= 2 and "".join(pieces) == final.content[0].text and "Paris" in final.content[0].text
    kinds = [e.type for e in events if e.type in RAW]
    deltas = kinds.count("content_block_delta")
    assert kinds == ["message_start", "content_block_start", *["content_block_delta"] * deltas, "content_block_stop",
                     "message_delta", "message_stop"], kinds
    assert final.stop_reason in ("end_turn", "max_tokens") and final.usage.input_tokens > 0
    assert 0 < final.usage.output_tokens <= 32


def test_an_image_block_is_read_by_the_router(sdk: anthropic.Anthropic) -> None:
    image = base64.b64encode(text_image("OPEN DAILY FROM NINE")).decode()
    raw = sdk.messages.with_raw_response.create(model="auto", **GREEDY, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What does this sign say?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image}}]}])
    message = raw.parse()
    assert json.loads(raw.headers["x-tmr-routing"])["use_case"] == "multimodal"
    assert message.content[0].text.strip(), message


def valid_uses(message: Any) -> list[Any]:
    """The message's tool_use blocks, each input validated against the tool's input_schema."""
    uses = [b for b in message.content if b.type == "tool_use"]
    for use in uses:
        assert use.name == "get_weather"
        jsonschema.validate(use.input, WEATHER["input_schema"])
    return uses


def test_a_tool_use_then_its_tool_result_gets_an_answer(sdk: anthropic.Anthropic) -> None:
    first = sdk.messages.create(model=AGENT, messages=PARIS, tools=[WEATHER], tool_choice=FORCED, max_tokens=160,
                                extra_body={"temperature": 0})
    assert first.stop_reason == "tool_use", first
    (use,) = valid_uses(first)
    history = [*PARIS, {"role": "assistant", "content": first.content},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                             "content": "18 degrees Celsius and sunny"}]}]
    answer = sdk.messages.create(model=AGENT, messages=history, tools=[WEATHER], tool_choice={"type": "none"},
                                 max_tokens=48, extra_body={"temperature": 0})
    assert answer.stop_reason in ("end_turn", "max_tokens"), answer
    assert [b.type for b in answer.content] == ["text"] and answer.content[0].text.strip()


def test_a_streamed_tool_use_has_input_json_that_joins_into_its_input(sdk: anthropic.Anthropic) -> None:
    with sdk.messages.stream(model=AGENT, messages=PARIS, tools=[WEATHER], tool_choice=FORCED, max_tokens=160,
                             extra_body={"temperature": 0}) as stream:
        events = list(stream)
        final = stream.get_final_message()
    (use,) = valid_uses(final)
    pieces = [e.delta.partial_json for e in events
              if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
    assert pieces and json.loads("".join(pieces)) == use.input
    assert final.stop_reason == "tool_use"


def test_a_missing_max_tokens_is_a_400_naming_it(sdk: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.create(model="auto", messages=FRANCE, max_tokens=anthropic.omit)  # the body has none
    err = info.value
    assert err.status_code == 400 and err.body["type"] == "error"
    assert err.body["error"]["type"] == "invalid_request_error" and "max_tokens" in err.body["error"]["message"]


def test_a_wrong_key_is_a_401(front: FrontProcess) -> None:
    wrong = anthropic.Anthropic(base_url=front.url, api_key="not-the-key", max_retries=0, timeout=60)
    with pytest.raises(anthropic.AuthenticationError) as info:
        wrong.messages.create(model="auto", messages=FRANCE, **GREEDY)
    assert info.value.status_code == 401 and info.value.body["error"]["type"] == "authentication_error"
