"""A streamed request that offers tools, answered in words, on the real server: the router holds back
text that may turn out to be a tool call, so no piece streams; the words still reach the client, whole,
in the last response (RouterClient over gRPC, and the openai SDK through the front)."""
from __future__ import annotations

from typing import Iterator

import openai
import pytest

from client import RouterClient
from launcher import TritonServer

from .conftest import LLM
from .services import sdk_through_a_front

pytestmark = pytest.mark.integration
QUESTION = "What is the capital of France?"
SPELL = {"type": "function", "function": {
    "name": "spell_backwards", "description": "Spell a word backwards.",
    "parameters": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]}}}
GREEDY = {"max_tokens": 24, "temperature": 0}


@pytest.fixture(scope="module")
def sdk(router: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    with sdk_through_a_front(router, tmp_path_factory.mktemp("streamed-tools")) as client:
        yield client


def test_words_answered_to_a_streamed_request_with_tools_reach_the_router_client(router: TritonServer) -> None:
    client = RouterClient(router.grpc_url, "grpc")
    try:
        options = {"model": LLM, "tools": [SPELL], "tool_choice": "auto", "sampling_parameters": GREEDY}
        whole = client.route(QUESTION, options)
        streamed = client.route(QUESTION, {**options, "stream": True})
    finally:
        client.close()
    assert whole.text and not whole.tool_calls, whole  # the 135M model answers this in words
    assert streamed.text == whole.text and not streamed.tool_calls, (streamed.text, whole.text)


def test_words_answered_to_a_streamed_request_with_tools_reach_the_sdk(sdk: openai.OpenAI) -> None:
    ask = {"model": LLM, "messages": [{"role": "user", "content": QUESTION}], "tools": [SPELL], **GREEDY}
    whole = sdk.chat.completions.create(**ask).choices[0].message
    assert whole.content and not whole.tool_calls, whole
    chunks = list(sdk.chat.completions.create(**ask, stream=True))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == whole.content, (content, whole.content)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length"), chunks[-1]
