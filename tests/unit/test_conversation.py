"""Conversations: the turns a request carries, and how each kind of text generator gets them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_router.contract.router import RouterRequest
from model_router.errors import InputError, ServingError
from model_router.registry import ModelSpec, load_registry
from model_router.contract.request import MAX_TURNS
from model_router.routing.chat import render
from model_router.routing.targets import Prepared, TextGeneration

from .chat_templates import QWEN_TEMPLATE, tiny_tokenizer

TURNS = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "My name is Ada."},
         {"role": "assistant", "content": "Hello Ada."}, {"role": "user", "content": "What is my name?"}]
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}
CALLED = [{"role": "user", "content": "Weather in Paris?"},
          {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {
              "name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
          {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"}]
QWEN_CPU = ("qwen2_5_coder_1_5b_instruct", "qwen2_5_coder_0_5b_instruct")


def vllm_model(tmp_path: Path, template: str | None = QWEN_TEMPLATE) -> ModelSpec:
    """Qwen2.5-7B of the GPU profile, its tokenizer a tiny one with `template` (tests/unit/chat_templates.py)."""
    tokenizer = str(tiny_tokenizer(tmp_path / "tokenizer", template))
    return load_registry().model("qwen2_5_7b_instruct").model_copy(update={"tokenizer": tokenizer})


def test_the_query_is_the_last_user_turn_and_text_may_add_it() -> None:
    r = RouterRequest.of("", None, {}, messages=json.dumps(TURNS))
    assert r.text == "What is my name?" and len(r.messages) == 4
    r = RouterRequest.of("And my age?", None, {}, messages=json.dumps(TURNS[:3]))
    assert r.text == "And my age?" and r.messages[-1].content == "And my age?"


@pytest.mark.parametrize("messages, words", [
    ([{"role": "robot", "content": "x"}], "messages[0].role: 'robot' unknown. Available"),
    ([{"role": "user", "content": "\u200b "}, {"role": "user", "content": "hi"}], "messages[0].content: empty"),
    ([{"role": "user", "content": "\u200b "}], "text: empty"),  # the last turn, with nothing attached
    ([{"role": "user"}], "messages[0].content: required"),
    (TURNS[:3], "messages[2].role: the last turn must be the user's"),
    ([{"role": "user", "content": "x"}] * (MAX_TURNS + 1), f"messages: {MAX_TURNS + 1} turns exceeds the limit"),
    ([{"role": "user", "content": "x" * 33_000}], "characters in all exceeds the limit of 32000"),
    ({"role": "user", "content": "x"}, "messages: expected a JSON array"),
])
def test_bad_conversations_name_the_turn_and_the_limit(messages, words: str) -> None:
    with pytest.raises(InputError) as err:
        RouterRequest.of("", None, {}, messages=json.dumps(messages))
    assert words in str(err.value)


def test_our_backend_gets_the_turns_with_the_prepared_prompt_last() -> None:
    spec = load_registry().model("smollm2_135m_instruct")
    r = RouterRequest.of("", None, {}, messages=json.dumps(TURNS))
    tensors = TextGeneration().for_request(spec, r, "en", False, None)[0]
    sent = json.loads(tensors["messages"][0])
    assert sent == TURNS and tensors["text_input"][0] == b"What is my name?"
    alone = TextGeneration().for_request(spec, RouterRequest.of("Hi", None, {}), "en", False, None)[0]
    assert "messages" not in alone  # a single question stays the plain vLLM contract


def test_a_vllm_model_gets_the_conversation_rendered_by_its_chat_template(tmp_path: Path) -> None:
    spec = vllm_model(tmp_path)
    r = RouterRequest.of("", None, {}, messages=json.dumps(TURNS))
    tensors = TextGeneration().for_request(spec, r, "en", False, None)[0]
    prompt = tensors["text_input"][0].decode()
    assert prompt == ("<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nMy name is Ada.<|im_end|>\n"
                      "<|im_start|>assistant\nHello Ada.<|im_end|>\n<|im_start|>user\nWhat is my name?<|im_end|>\n"
                      "<|im_start|>assistant\n")
    assert "messages" not in tensors and "tools" not in tensors  # the vLLM backend takes the prompt alone


def test_a_vllm_model_whose_template_writes_tools_gets_them_and_past_calls_as_objects(tmp_path: Path) -> None:
    spec = vllm_model(tmp_path)
    r = RouterRequest.of("", json.dumps({"tools": [WEATHER]}), {}, messages=json.dumps(CALLED))
    tensors = TextGeneration().for_request(spec, r, "en", False, None)[0]
    prompt = tensors["text_input"][0].decode()
    assert prompt.startswith('<|im_start|>system\n<tools>{"type": "function", "function": {"name": "get_weather"')
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in prompt
    assert "<|im_start|>tool\nsunny, 21 C<|im_end|>" in prompt and "tools" not in tensors


def test_without_its_tokenizer_a_vllm_model_is_not_served_an_untemplated_prompt() -> None:
    spec = load_registry().model("qwen2_5_vl_7b_instruct").model_copy(update={"tokenizer": "/nonexistent/tok"})
    r = RouterRequest.of("What is this?", None, {"image": b"png"})
    with pytest.raises(ServingError) as err:
        TextGeneration().for_request(spec, r, "en", False, Prepared("What is this?", [b"png"]))
    assert "model 'qwen2_5_vl_7b_instruct': its tokenizer '/nonexistent/tok'" in str(err.value)
    assert "cannot be found here" in str(err.value)


def test_a_tokenizer_without_a_chat_template_is_refused_by_name(tmp_path: Path) -> None:
    spec = vllm_model(tmp_path, template=None)
    with pytest.raises(ServingError, match="model 'qwen2_5_7b_instruct': its tokenizer .* has no chat template"):
        render(spec, [{"role": "user", "content": "Hi"}])


def test_a_conversation_the_template_refuses_names_the_messages(tmp_path: Path) -> None:
    strict = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('the first turn must be the user') }}{% endif %}"
    spec = vllm_model(tmp_path, template=strict)
    with pytest.raises(InputError) as err:
        render(spec, TURNS)
    assert err.value.field == "messages" and "the first turn must be the user" in str(err.value)
    assert "qwen2_5_7b_instruct" in str(err.value)


@pytest.mark.parametrize("model", QWEN_CPU)
def test_a_llamacpp_model_gets_the_openai_turns_and_the_tools_for_its_own_template(model: str) -> None:
    spec = load_registry().model(model)
    r = RouterRequest.of("", json.dumps({"tools": [WEATHER]}), {}, messages=json.dumps(CALLED))
    tensors = TextGeneration().for_request(spec, r, "en", False, None)[0]
    assert json.loads(tensors["messages"][0]) == CALLED  # tool_calls and the tool turn as OpenAI wrote them
    assert json.loads(tensors["tools"][0]) == [WEATHER] and "<tools>" not in tensors["messages"][0].decode()
    alone = TextGeneration().for_request(spec, RouterRequest.of("Weather?", json.dumps({"tools": [WEATHER]}), {}), "en",
                                         False, None)[0]
    assert json.loads(alone["messages"][0]) == [{"role": "user", "content": "Weather?"}]
    assert json.loads(alone["tools"][0]) == [WEATHER]
    plain = TextGeneration().for_request(spec, RouterRequest.of("Hi", None, {}), "en", False, None)[0]
    assert "tools" not in plain and "messages" not in plain


def test_smollm2_gets_the_tools_and_past_calls_as_hermes_text_and_no_tools_input() -> None:
    spec = load_registry().model("smollm2_135m_instruct")
    r = RouterRequest.of("", json.dumps({"tools": [WEATHER]}), {}, messages=json.dumps(CALLED))
    tensors = TextGeneration().for_request(spec, r, "en", False, None)[0]
    turns = json.loads(tensors["messages"][0])
    assert "tools" not in tensors and turns[0]["role"] == "system" and "<tools>" in turns[0]["content"]
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' == turns[2]["content"]
    assert turns[3] == {"role": "user", "content": "<tool_response>\nsunny, 21 C\n</tool_response>"}


def test_the_last_turn_may_be_only_an_attachment() -> None:
    r = RouterRequest.of("", None, {"image": b"png"}, messages=json.dumps(TURNS[:3] + [{"role": "user", "content": ""}]))
    assert r.text == "" and r.kinds == ("image",) and len(r.messages) == 4
