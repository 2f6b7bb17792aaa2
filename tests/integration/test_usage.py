"""Usage of a streamed answer on the real server: the engine counts output tokens per response, and
what reaches the client (through the router with RouterClient, and through the OpenAI front with
`stream_options.include_usage`) is every response's count added up: a greedy answer made to run to
max_tokens (ignore_eos) reports max_tokens, streamed or not."""
from __future__ import annotations

from typing import Iterator

import openai
import pytest

from client import RouterClient
from launcher import TritonServer

from .conftest import LLM
from .services import sdk_through_a_front

pytestmark = pytest.mark.integration
N = 12
COUNT = "Count from 1 to 100, separated by commas."
RUN_ON = {"max_tokens": N, "temperature": 0, "ignore_eos": True}


@pytest.fixture(scope="module")
def sdk(router: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    with sdk_through_a_front(router, tmp_path_factory.mktemp("usage")) as client:
        yield client


def test_a_streamed_answer_through_the_router_reports_every_token(router: TritonServer) -> None:
    client = RouterClient(router.grpc_url, "grpc")
    try:
        options = {"model": LLM, "sampling_parameters": RUN_ON}
        pieces: list[str] = []
        streamed = client.route(COUNT, {**options, "stream": True}, on_piece=pieces.append)
        whole = client.route(COUNT, options)
    finally:
        client.close()
    assert len(pieces) > 1, pieces  # it came in several responses, each with its own count
    assert (streamed.finish_reason, streamed.usage.completion_tokens) == ("length", N), streamed
    assert streamed.usage == whole.usage, (streamed.usage, whole.usage)


def test_a_streamed_answer_through_the_front_reports_every_token(sdk: openai.OpenAI) -> None:
    body = {"model": "auto", "messages": [{"role": "user", "content": COUNT}], "max_tokens": N, "temperature": 0,
            "extra_body": {"ignore_eos": True}}
    chunks = list(sdk.chat.completions.create(stream=True, stream_options={"include_usage": True}, **body))
    whole = sdk.chat.completions.create(**body)
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) > 1, chunks
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == N, chunks[-1]
    assert chunks[-1].usage == whole.usage and whole.choices[0].finish_reason == "length", (chunks[-1], whole)
