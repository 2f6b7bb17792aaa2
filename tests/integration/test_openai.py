"""The OpenAI-compatible API on the real server, through the official openai SDK (and plain HTTP for
the SSE framing): chat plain and streamed, a conversation, an image part, speech and transcription,
usage, and each class of error with its status."""
from __future__ import annotations

import base64
import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import openai
import pytest

from client import RouterClient
from client.samples import text_image
from launcher import DEFAULT_MODELS_DIR, FrontProcess, TritonServer

from .conftest import LLM, start_server, stop_server
from .observe import UNLOAD_WITHIN_S, index_states, llm_requests, llm_tokens, settled, wait_for
from .services import KEY, error_of, start_front, stop_front

pytestmark = pytest.mark.integration
SHORT = {"max_tokens": 32, "temperature": 0}
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def front(router: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontProcess]:
    proc = start_front(router, tmp_path_factory.mktemp("openai"))
    yield proc
    stop_front(proc)


@pytest.fixture(scope="module")
def sdk(front: FrontProcess) -> openai.OpenAI:
    # No retries: a test sees each answer as the server gave it.
    return openai.OpenAI(base_url=f"{front.url}/v1", api_key=KEY, max_retries=0, timeout=300)


def router_takes_messages(server: TritonServer) -> bool:
    config = RouterClient(server.http_url)._client.get_model_config("router")
    return any(i["name"] == "messages" for i in config["input"])


def prompt_tokens(turns: list[dict]) -> int:
    """What our transformers backend feeds SmolLM2: the turns through its chat template."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(DEFAULT_MODELS_DIR / "smollm2-135m-instruct")
    return len(tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=True, return_dict=False))


def test_models_are_auto_and_those_the_router_may_pick(sdk: openai.OpenAI) -> None:
    ids = [m.id for m in sdk.models.list()]
    assert ids[0] == "auto" and {LLM, "tts_espeak", "stt_whisper_base"} <= set(ids)
    assert not {"router", "query_classifier", "ocr_tesseract", "video_frames"} & set(ids)
    assert sdk.models.retrieve(LLM).id == LLM


def test_chat_answers_with_usage_and_the_routing_decision(sdk: openai.OpenAI) -> None:
    raw = sdk.chat.completions.with_raw_response.create(model="auto", messages=FRANCE, **SHORT)
    answer = raw.parse()
    text = answer.choices[0].message.content
    assert "Paris" in text and answer.choices[0].finish_reason == "stop"
    # The router picked the model; the answer says which, in the body and in a header.
    assert answer.model == LLM and answer.routing["use_case"] == "agent" and answer.routing["model"] == LLM
    assert json.loads(raw.headers["x-tmr-routing"]) == answer.routing
    # Counted with the model's own tokenizer, as the backend fed it.
    assert answer.usage.prompt_tokens == prompt_tokens(FRANCE)
    assert 0 < answer.usage.completion_tokens < 32
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_chat_streams_the_tokens_as_they_come(sdk: openai.OpenAI) -> None:
    chunks = list(sdk.chat.completions.create(model="auto", messages=FRANCE, stream=True,
                                              stream_options={"include_usage": True}, **SHORT))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "Paris" in "".join(pieces) and len(pieces) >= 3, pieces
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finish] == ["stop"]
    assert finish[0].model == LLM and finish[0].routing["model"] == LLM  # known once the router is done
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == prompt_tokens(FRANCE)
    assert chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_sampling_fields_reach_the_model(sdk: openai.OpenAI) -> None:
    cut = sdk.chat.completions.create(model="auto", messages=FRANCE, max_tokens=3, temperature=0)
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 3
    stopped = sdk.chat.completions.create(model="auto", messages=FRANCE, stop=["Paris"], **SHORT)
    assert "Paris" not in stopped.choices[0].message.content
    story = [{"role": "user", "content": "Tell me a short story about a cat."}]
    a, b = (sdk.chat.completions.create(model=LLM, messages=story, temperature=1.0, seed=7, max_tokens=24)
            for _ in range(2))
    assert a.choices[0].message.content == b.choices[0].message.content  # the seed makes sampling repeat
    assert "requested by options.model" in a.routing["reason"]  # the name was a preference


def test_a_conversation_whose_answer_needs_an_earlier_turn(sdk: openai.OpenAI, server: TritonServer) -> None:
    if not router_takes_messages(server):
        pytest.skip("the router has no `messages` input yet (issue 14, the router's half)")
    turns = [{"role": "user", "content": "My name is Ada. Please remember it."},
             {"role": "assistant", "content": "Nice to meet you, Ada! I will remember your name."},
             {"role": "user", "content": "What is my name?"}]
    answer = sdk.chat.completions.create(model="auto", messages=turns, **SHORT)
    assert "Ada" in answer.choices[0].message.content, answer.choices[0].message.content
    assert answer.usage.prompt_tokens == prompt_tokens(turns)  # the whole conversation was counted


def test_an_image_content_part_is_the_image_the_router_reads(sdk: openai.OpenAI) -> None:
    image = base64.b64encode(text_image("OPEN DAILY FROM NINE", fmt="JPEG")).decode()
    answer = sdk.chat.completions.create(model="auto", **SHORT, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What does this sign say?"},
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{image}"}}]}])
    assert "OPEN DAILY FROM NINE" in answer.choices[0].message.content
    assert answer.routing["use_case"] == "multimodal" and answer.routing["modality"] == "image"


def test_speech_then_transcription_round_trip(sdk: openai.OpenAI) -> None:
    # A colon: the router alone would speak only what follows it; OpenAI's input is all spoken.
    speech = sdk.audio.speech.with_raw_response.create(model="auto", voice="alloy",
                                                       input="Good morning everyone: welcome to the show.")
    wav = speech.content
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE" and speech.headers["content-type"] == "audio/wav"
    assert json.loads(speech.headers["x-tmr-routing"])["model"] == "tts_espeak"
    heard = sdk.audio.transcriptions.create(model="auto", file=("speech.wav", wav, "audio/wav"))
    words = heard.text.lower()
    assert "good morning" in words and "welcome to the show" in words, heard.text
    assert heard.routing["use_case"] == "stt" and heard.routing["model"] == "stt_whisper_base"
    plain = sdk.audio.transcriptions.create(model="stt_whisper_base", file=("speech.wav", wav), response_format="text")
    assert "good morning" in plain.lower()


def test_client_errors_are_openai_errors_naming_the_field(sdk: openai.OpenAI, front: FrontProcess) -> None:
    create = sdk.chat.completions.create
    # The router's own checks, the field named as the client sent it.
    err = error_of(create, model="auto", messages=FRANCE, temperature=5)
    assert isinstance(err, openai.BadRequestError) and err.status_code == 400
    assert err.body["param"] == "temperature" and "out of range [0.0, 2.0]" in err.body["message"]
    # The front's: the body's shape.
    err = error_of(create, model="auto", messages=[{"role": "robot", "content": "Hi"}])
    assert err.status_code == 400 and err.body["param"] == "messages[0].role"
    err = error_of(create, model="auto", messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/sign.jpg"}}]}])
    assert err.status_code == 400 and err.body["param"] == "messages[0].content[0].image_url.url"
    err = error_of(sdk.audio.speech.create, model="auto", voice="alloy", input="Hello", response_format="mp3")
    assert err.status_code == 400 and err.body["param"] == "response_format"
    err = error_of(sdk.audio.transcriptions.create, model="auto", file=("x.wav", b"RIFF not really audio"),
                   language="fr")
    assert err.status_code == 400 and err.body["param"] == "language"
    # A model the router does not know.
    err = error_of(create, model="gpt-9", messages=FRANCE)
    assert isinstance(err, openai.NotFoundError) and err.code == "model_not_found" and err.body["param"] == "model"
    assert LLM in err.body["message"]  # with what is available
    # A wrong key, or none.
    wrong = openai.OpenAI(base_url=f"{front.url}/v1", api_key="not-the-key", max_retries=0)
    assert isinstance(error_of(wrong.models.list), openai.AuthenticationError)
    with pytest.raises(urllib.error.HTTPError) as none:
        urllib.request.urlopen(f"{front.url}/v1/models", timeout=10)
    assert none.value.code == 401 and json.loads(none.value.read())["error"]["code"] == "invalid_api_key"
    # ... and it serves on.
    assert "Paris" in create(model="auto", messages=FRANCE, **SHORT).choices[0].message.content


def post(front: FrontProcess, body: dict) -> tuple[int, dict[str, str], list[tuple[float, str]], bytes]:
    """(status, headers, [(arrival time, event)], bytes after the last event) of a POST, read as bytes
    arrive; events end with a blank line."""
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=300)
    conn.request("POST", "/v1/chat/completions", json.dumps(body),
                 {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    resp = conn.getresponse()
    events, buf = [], b""
    while chunk := resp.read1(65536):
        buf += chunk
        while b"\n\n" in buf:
            raw, buf = buf.split(b"\n\n", 1)
            events.append((time.monotonic(), raw.decode()))
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, events, buf


def test_sse_framing_on_plain_http(front: FrontProcess) -> None:
    status, headers, events, rest = post(front, {"model": "auto", "messages": FRANCE, "stream": True,
                                                 "max_tokens": 48, "temperature": 0})
    assert status == 200 and headers["content-type"].startswith("text/event-stream") and rest == b""
    assert all(raw.startswith("data: ") and "\n" not in raw for _, raw in events), events
    assert events[-1][1] == "data: [DONE]"
    chunks = [json.loads(raw[6:]) for _, raw in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = [(t, c["choices"][0]["delta"]["content"]) for (t, _), c in zip(events, chunks)
               if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert "Paris" in "".join(text for _, text in content) and len(content) >= 3, content
    # A request the router refuses is a status, not an event in a stream already answered 200.
    status, headers, events, rest = post(front, {"model": "auto", "messages": FRANCE, "stream": True,
                                                 "temperature": 7})
    assert status == 400 and headers["content-type"] == "application/json" and events == []
    assert json.loads(rest)["error"]["param"] == "temperature"


def test_pieces_reach_the_client_while_the_llm_still_generates(front: FrontProcess, server: TritonServer) -> None:
    """Streaming, shown by order rather than by the clock: the client takes its first piece of a 1000-token
    answer and leaves; had the front or the router held the pieces back until the end, the LLM would have
    generated all 1000 tokens by then. Counted by the LLM's own backend on Triton's metrics port."""
    before = settled(lambda: llm_tokens(server, absent=0.0))
    body = {"model": "auto", "messages": FRANCE, "stream": True, "max_tokens": 1000, "temperature": 0,
            "ignore_eos": True}
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=300)
    conn.request("POST", "/v1/chat/completions", json.dumps(body),
                 {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    resp = conn.getresponse()
    assert resp.status == 200
    buf, pieces = b"", []
    while not any(piece for piece in pieces):
        chunk = resp.read1(65536)
        assert chunk, f"the stream ended before a piece of the answer: {buf!r}"
        buf += chunk
        *events, buf = buf.split(b"\n\n")
        pieces += [json.loads(e[6:])["choices"][0]["delta"].get("content") for e in events if e != b"data: [DONE]"]
    conn.close()  # the client leaves holding its first piece
    assert settled(lambda: llm_tokens(server)) - before < 1000, \
        "all 1000 tokens were generated before the client had a piece"


def test_a_client_that_leaves_cancels_its_router_request(front: FrontProcess, server: TritonServer) -> None:
    """Mid-stream, and before a whole answer: the LLM drops each, counted as cancelled, not finished
    (its backend's own counts, on Triton's metrics port, outside the front and the router)."""
    def dropped() -> float:
        return llm_requests(server, "cancelled", absent=0.0)  # a missing series cannot pass the waits below

    before, finished = settled(dropped), settled(lambda: llm_requests(server, "finished", absent=0.0))
    # 1000 tokens whatever the model says: the clients leave once the LLM has begun.
    story = {"model": "auto", "max_tokens": 1000, "temperature": 0, "ignore_eos": True,
             "messages": [{"role": "user", "content": "Write a very long story about a dragon."}]}
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=300)
    conn.request("POST", "/v1/chat/completions", json.dumps({**story, "stream": True}), headers)
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read1(65536).startswith(b"data: ")
    conn.close()  # after the first chunks
    assert wait_for(lambda: dropped() >= before + 1, 60), "the LLM did not drop the stream its client left"
    # A whole answer, asked for; the client leaves once the LLM's token count shows it is being made.
    tokens = settled(lambda: llm_tokens(server, absent=0.0))
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=300)
    conn.request("POST", "/v1/chat/completions", json.dumps(story), headers)
    assert wait_for(lambda: llm_tokens(server, absent=0.0) > tokens, 120, poll_s=0.05), "the LLM never began the answer"
    conn.close()
    assert wait_for(lambda: dropped() >= before + 2, 60), f"the LLM dropped {dropped() - before} of 2 requests"
    # No "finished" series is none finished: the family is there, its cancelled series rose.
    assert llm_requests(server, "finished", absent=0.0) == finished, "the LLM finished an answer nobody waited for"


def test_overloaded_is_503_with_retry_after_and_the_unexpected_is_500(tmp_path: Path) -> None:
    """A server of its own: one worker, no queue, nothing loaded yet."""
    srv = start_server([], env={"TMR_WORKERS": "1", "TMR_MAX_QUEUED": "0"})
    front = None
    try:
        front = start_front(srv, tmp_path)
        sdk = openai.OpenAI(base_url=f"{front.url}/v1", api_key=KEY, max_retries=0, timeout=300)
        # No router loaded: Triton's own error, which is no client's fault.
        err = error_of(sdk.chat.completions.create, model="auto", messages=FRANCE)
        assert isinstance(err, openai.InternalServerError) and err.status_code == 500
        assert err.body["type"] == "server_error" and "router" in err.body["message"]
        for model in ("query_classifier", "router"):
            RouterClient(srv.http_url).load(model)
        # One request holds the only worker while the router loads the LLM for it...
        first: dict = {}
        holder = threading.Thread(target=lambda: first.update(
            answer=sdk.chat.completions.create(model="auto", messages=FRANCE, **SHORT)))
        holder.start()
        deadline = time.monotonic() + 60
        while index_states(srv).get(LLM) not in ("LOADING", "READY") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert index_states(srv).get(LLM) == "LOADING", "the first request did not start loading the LLM"
        # ... so the next is turned away at once, with when to come back.
        raw = sdk.chat.completions.with_raw_response
        with pytest.raises(openai.InternalServerError) as busy:
            raw.create(model="auto", messages=FRANCE, **SHORT)
        assert busy.value.status_code == 503 and busy.value.code == "overloaded"
        assert int(busy.value.response.headers["retry-after"]) > 0 and "router overloaded" in busy.value.message
        holder.join(300)
        assert "Paris" in first["answer"].choices[0].message.content
        # Answered and turned away alike, nothing of these requests is left in Triton: the router unloads.
        RouterClient(srv.http_url).unload("router")
        assert wait_for(lambda: index_states(srv).get("router") == "UNAVAILABLE", UNLOAD_WITHIN_S), index_states(srv)
    finally:
        try:
            if front is not None:
                stop_front(front)
        finally:
            stop_server(srv)
