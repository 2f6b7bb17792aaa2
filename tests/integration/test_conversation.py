"""Conversations through the router: the classifier reads the last user turn, the target gets them all."""
from __future__ import annotations

import pytest

from client import RouterClient
from client.api import InferenceServerException

from .conftest import LLM

pytestmark = pytest.mark.integration
HISTORY = [{"role": "user", "content": "My name is Ada."}, {"role": "assistant", "content": "Nice to meet you, Ada!"}]
GREEDY = {"use_case": "agent", "sampling_parameters": {"max_tokens": 24, "temperature": 0}}


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_an_answer_that_needs_an_earlier_turn_gets_it(router, protocol: str) -> None:
    url = router.grpc_url if protocol == "grpc" else router.http_url
    client = RouterClient(url, protocol)
    with_history = client.route("What is my name?", GREEDY, messages=HISTORY)
    without = client.route("What is my name?", GREEDY)
    assert "Ada" in with_history.text and "Ada" not in without.text, (with_history.text, without.text)
    assert with_history.decision["model"] == LLM and with_history.decision["use_case"] == "agent"


def test_the_classifier_reads_the_last_user_turn(router) -> None:
    turns = [{"role": "user", "content": "Read this aloud: 'Good morning everyone.'"},
             {"role": "assistant", "content": "Here it is."}, {"role": "user", "content": "What is 12 times 7?"}]
    decision = RouterClient(router.grpc_url, "grpc").route("", {"sampling_parameters": {"max_tokens": 8}},
                                                          messages=turns).decision
    assert decision["use_case"] == "agent"  # the question, not the earlier read-aloud request


@pytest.mark.parametrize("messages, words", [
    ([{"role": "robot", "content": "hi"}], "messages[0].role: 'robot' unknown. Available"),
    ([{"role": "user", "content": "\u200b"}, {"role": "user", "content": "hi"}], "messages[0].content: empty"),
    ([{"role": "user", "content": "x"}] * 65, "messages: 65 turns exceeds the limit of 64"),
    (HISTORY, "messages[1].role: the last turn must be the user's"),
])
def test_a_bad_conversation_is_a_clear_error(router, messages: list, words: str) -> None:
    with pytest.raises(InferenceServerException) as err:
        RouterClient(router.grpc_url, "grpc").route("", GREEDY, messages=messages)
    assert words in str(err.value)
