"""Conversations: the turns a request carries, and how each kind of text generator gets them."""
from __future__ import annotations

import json

import pytest

from launcher import DEFAULT_MODELS_DIR
from model_router.errors import InputError
from model_router.registry import load_registry
from model_router.request import MAX_TURNS, make_request
from model_router.routing.targets import TextGeneration

TURNS = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "My name is Ada."},
         {"role": "assistant", "content": "Hello Ada."}, {"role": "user", "content": "What is my name?"}]
SMOLLM2 = DEFAULT_MODELS_DIR / "smollm2-135m-instruct"


def test_the_query_is_the_last_user_turn_and_text_may_add_it() -> None:
    r = make_request("", {}, None, messages=json.dumps(TURNS))
    assert r.text == "What is my name?" and len(r.messages) == 4
    r = make_request("And my age?", {}, None, messages=json.dumps(TURNS[:3]))
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
        make_request("", {}, None, messages=json.dumps(messages))
    assert words in str(err.value)


def test_our_backend_gets_the_turns_with_the_prepared_prompt_last() -> None:
    spec = load_registry().model("smollm2_135m_instruct")
    r = make_request("", {}, None, messages=json.dumps(TURNS))
    tensors = TextGeneration().for_request(spec, r, "en", False, None)[0]
    sent = json.loads(tensors["messages"][0])
    assert sent == TURNS and tensors["text_input"][0] == b"What is my name?"
    alone = TextGeneration().for_request(spec, make_request("Hi", {}, None), "en", False, None)[0]
    assert "messages" not in alone  # a single question stays the plain vLLM contract


@pytest.mark.skipif(not (SMOLLM2 / "tokenizer_config.json").exists(), reason="SmolLM2 is prepared by setup.sh")
def test_a_vllm_model_gets_the_conversation_rendered_by_its_chat_template() -> None:
    spec = load_registry().model("qwen2_5_7b_instruct").model_copy(update={"tokenizer": str(SMOLLM2)})
    r = make_request("", {}, None, messages=json.dumps(TURNS))
    prompt = TextGeneration().for_request(spec, r, "en", False, None)[0]["text_input"][0].decode()
    assert "My name is Ada." in prompt and "Hello Ada." in prompt and "You are terse." in prompt
    assert prompt.rstrip().endswith("assistant") and "messages" not in TextGeneration().for_request(spec, r, "en",
                                                                                                       False, None)[0]


def test_without_its_tokenizer_a_vllm_model_gets_the_plain_prompt_and_placeholders() -> None:
    spec = load_registry().model("qwen2_5_vl_7b_instruct").model_copy(update={"tokenizer": "/nonexistent/tok"})
    r = make_request("What is this?", {"image": b"png"}, None)
    from model_router.routing.targets import Prepared

    tensors = TextGeneration().for_request(spec, r, "en", False, Prepared("What is this?", [b"png"]))[0]
    assert tensors["text_input"][0].decode() == spec.image_placeholder + "What is this?"
    assert tensors["image"].size == 1


def test_the_last_turn_may_be_only_an_attachment() -> None:
    r = make_request("", {"image": b"png"}, None, messages=json.dumps(TURNS[:3] + [{"role": "user", "content": ""}]))
    assert r.text == "" and r.kinds == ("image",) and len(r.messages) == 4
