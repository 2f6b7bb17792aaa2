"""What the response cache keeps and gives back, on a real tritonserver (in-process cache): an answer
made by a stand-in or without its speech is never kept, and a replayed answer says why it ended; on
Redis, where answers outlive the router, a model edited in its repository misses the old answers.
Seen from the clients (the routing decision, the OpenAI answer) and the LLM backend's own token counter
on Triton's metrics port (a repeat that reaches the model makes tokens)."""
from __future__ import annotations

import os
from typing import Iterator

import openai
import pytest

from launcher import FrontProcess, TritonServer

from .conftest import stop_server
from .observe import HOLDING, UNLOAD_WITHIN_S, _post, index_states, llm_tokens, settled, wait_for
from .router_setup import BROKEN, LLM, LLM_BF16, start_router_server
from .services import KEY, RedisServer, ask, start_front, stop_front

pytestmark = pytest.mark.integration
# A text answer, whatever the classifier makes of a question ("say ..." may read as one to speak).
AGENT = {"use_case": "agent"}
CUT = {**AGENT, "sampling_parameters": {"max_tokens": 4, "temperature": 0}}  # too few for the question: "length"
STORY = "Write a long story about a dragon who learns to fly"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """The LLM loaded; BROKEN (its load fails) cools down long after one failure, and serves only when
    asked for by name (in no chain: its cool-down is not every agent answer's); no speech model in the
    repository, so an avatar's reply goes out unspoken."""
    srv = start_router_server(tmp_path_factory.mktemp("cache-kept"), ["query_classifier", "router", LLM],
                              lambda raw: raw["chains"]["cpu"].update(agent=[LLM, LLM_BF16]),
                              TMR_CACHE_URL="memory", TMR_FAILURE_THRESHOLD="1", TMR_COOLDOWN_S="600")
    yield srv
    stop_server(srv)


def asked_three_times(server: TritonServer, question: str, options: dict) -> list[dict]:
    """The decisions of three same requests, each shown to have reached the LLM (its tokens grew; the
    backend ships its counts on a thread of its own, hence the waits)."""
    decisions = []
    for _ in range(3):
        spent = settled(lambda: llm_tokens(server, absent=0.0))
        answer = ask(server, question, options)
        assert wait_for(lambda: llm_tokens(server, absent=0.0) > spent, 60), \
            f"answered without the LLM: {answer.decision}"
        decisions.append(answer.decision)
    return decisions


def test_an_answer_that_passed_over_a_cooling_model_is_never_replayed(server: TritonServer) -> None:
    """BROKEN is asked for by name: the first answer comes after its fallback, the next ones pass it
    over while it cools down. Each is a stand-in's, and each repeat is answered by the LLM again."""
    first, second, third = asked_three_times(server, f"Name a river ({os.getpid()}).", {**AGENT, "model": BROKEN})
    assert first["fallbacks"][0]["model"] == BROKEN and first["model"] == LLM
    for later in (second, third):
        assert not later["fallbacks"] and later["model"] == LLM
        assert any(s["model"] == BROKEN and "cooling down" in s["why"] for s in later["skipped"]), later
    assert [d["cache"] for d in (first, second, third)] == ["miss"] * 3


def test_an_avatar_answer_without_its_speech_is_never_replayed(server: TritonServer) -> None:
    decisions = asked_three_times(server, f"Say hello to Asha ({os.getpid()}).", {"use_case": "avatar"})
    assert all(d["cache"] == "miss" and any("no speech" in why for why in d["degraded"]) for d in decisions), \
        decisions


def test_a_replayed_answer_cut_at_max_tokens_still_says_length(server: TritonServer) -> None:
    question = f"{STORY} ({os.getpid()})."
    answer = ask(server, question, CUT)
    assert answer.decision["cache"] == "miss" and answer.finish_reason == "length"
    spent = settled(lambda: llm_tokens(server))
    again = ask(server, question, CUT)
    assert again.decision["cache"] == "hit" and settled(lambda: llm_tokens(server)) == spent
    assert (again.text, again.finish_reason) == (answer.text, "length")


@pytest.fixture(scope="module")
def sdk(server: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    front: FrontProcess = start_front(server, tmp_path_factory.mktemp("openai"))
    yield openai.OpenAI(base_url=f"{front.url}/v1", api_key=KEY, max_retries=0, timeout=300)
    stop_front(front)


def test_the_openai_front_replays_finish_reason_length(sdk: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": f"{STORY}, in French ({os.getpid()})."}]
    answers = [sdk.chat.completions.create(model="auto", messages=messages, max_tokens=4, temperature=0,
                                          extra_body=AGENT)
               for _ in range(2)]
    assert [a.routing["cache"] for a in answers] == ["miss", "hit"]
    assert [a.choices[0].finish_reason for a in answers] == ["length", "length"]
    assert answers[1].choices[0].message.content == answers[0].choices[0].message.content


@pytest.fixture(scope="module")
def on_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """A server whose router keeps its answers in a Redis of its own (they outlive the router's
    restarts), on a repository whose LLM folder is a copy, for a test to edit."""
    redis_server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        srv = start_router_server(tmp_path_factory.mktemp("cache-revision"), ["query_classifier", "router", LLM],
                                  copies=(LLM,), TMR_CACHE_URL=redis_server.url)
        yield srv
        stop_server(srv)
    finally:
        redis_server.stop()


def restart_router(server: TritonServer) -> None:
    """The router unloaded and loaded again through model control (a plain load of an unchanged model
    keeps the instance it has): a new instance, reading its repository afresh."""
    _post(server, "models/router/unload")
    assert wait_for(lambda: index_states(server).get("router") not in HOLDING, UNLOAD_WITHIN_S), \
        "the router did not unload"
    _post(server, "models/router/load")


def test_an_edited_model_misses_the_answers_of_the_old_one(on_redis: TritonServer) -> None:
    """A restarted router still hits an answer kept on Redis; once the LLM's config.pbtxt was edited in
    the server's repository (a comment: the same behaviour) and the LLM reloaded, the same question
    misses at the same router, and the LLM answers it again (its token counter on Triton's metrics port)."""
    question, options = f"Name a mountain ({os.getpid()}).", {**AGENT, "model": LLM}
    assert ask(on_redis, question, options).decision["cache"] == "miss"
    restart_router(on_redis)
    spent = settled(lambda: llm_tokens(on_redis))
    assert ask(on_redis, question, options).decision["cache"] == "hit"
    assert settled(lambda: llm_tokens(on_redis)) == spent  # nothing generated
    config = on_redis.model_repository / LLM / "config.pbtxt"
    config.write_text(config.read_text() + "# Edited in place: a new revision of the same model.\n")
    _post(on_redis, f"models/{LLM}/load")  # the router runs on: it sees the new revision by itself
    assert wait_for(lambda: index_states(on_redis).get(LLM) == "READY", UNLOAD_WITHIN_S), index_states(on_redis)
    # A new instance keeps counters of its own, from none: a baseline of its own.
    spent = settled(lambda: llm_tokens(on_redis, absent=0.0))
    assert ask(on_redis, question, options).decision["cache"] == "miss"
    assert wait_for(lambda: llm_tokens(on_redis, absent=0.0) > spent, 60), "answered without the LLM"
