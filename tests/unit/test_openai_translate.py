"""The OpenAI front's pure parts: requests -> router calls, router errors -> statuses, bodies and chunks."""
from __future__ import annotations

import base64
import json

import pytest
from pydantic import ValidationError

from model_router.registry import load_registry
from model_router.routing.targets import what_to_say
from openai_front import responses
from openai_front.catalog import pickable
from model_router.contract.errors import ErrorKind, WireError
from model_router.contract.router import RouterAnswer, RouterRequest, Usage
from model_router.errors import InputError, NotFound, ServingError
from model_router.serving.admission import Overloaded
from openai_front.errors import ApiError, from_wire, invalid_body, unreachable
from openai_front.protocol import ChatCompletionRequest, Delta, SpeechBody, TranscriptionBody
from openai_front.translate import chat_call, speech_call, transcription_call, verbatim

PNG = b"\x89PNG\r\n\x1a\n fake but bytes"


def chat(**body) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "auto", **body})


def user(content) -> dict:
    return {"role": "user", "content": content}


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def data_url(raw: bytes, media: str = "image/png") -> str:
    return f"data:{media};base64,{base64.b64encode(raw).decode()}"


def refusal(fn, *args) -> ApiError:
    with pytest.raises(ApiError) as info:
        fn(*args)
    return info.value


def test_a_single_user_turn_is_the_routers_text_and_auto_leaves_the_choice_to_it() -> None:
    call = chat_call(chat(messages=[user("What is the capital of France?")]))
    assert call.request.text == "What is the capital of France?" and call.request.messages == () and call.request.attachments == {}
    assert call.request.options.wire() == {}  # no model preference, no sampling, no stream: the router's defaults
    assert set(call.request.encode()) == {"text", "options"}


def test_sampling_fields_and_a_model_name_become_options() -> None:
    call = chat_call(chat(model="smollm2_135m_instruct", stream=True, messages=[user("Hi")], max_completion_tokens=7,
                          temperature=0.2, top_p=0.9, stop=["\n"], seed=3, user="someone", metadata={"a": 1}))
    assert call.request.options.wire() == {"model": "smollm2_135m_instruct", "stream": True,
                                           "sampling_parameters": {"max_tokens": 7, "temperature": 0.2, "top_p": 0.9,
                                                                   "stop": ["\n"], "seed": 3}}
    # The router's field names lead back to the client's.
    assert call.openai_field("options.sampling_parameters.max_tokens") == "max_completion_tokens"
    assert call.openai_field("options.sampling_parameters.temperature") == "temperature"
    assert call.openai_field("options.model") == "model"


def test_a_conversation_goes_whole_as_messages() -> None:
    call = chat_call(chat(messages=[{"role": "developer", "content": "Be brief."}, user("My name is Ada."),
                                    {"role": "assistant", "content": [{"type": "text", "text": "Hello Ada."}]},
                                    user("What is my name?")]))
    assert call.request.text == "What is my name?"  # the query: the last user turn
    turns = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "My name is Ada."},
             {"role": "assistant", "content": "Hello Ada."}, {"role": "user", "content": "What is my name?"}]
    assert [m.as_turn() for m in call.request.messages] == turns
    sent = call.request.encode()
    assert json.loads(sent["messages"][0]) == turns
    assert RouterRequest.decode(sent.get) == call.request  # the query is not sent a second time as text


def test_an_image_part_becomes_the_image_attachment() -> None:
    call = chat_call(chat(messages=[user([{"type": "text", "text": "What does it say?"}, image_part(data_url(PNG))])]))
    assert call.request.text == "What does it say?" and call.request.attachments == {"image": PNG}
    assert call.openai_field("image") == "messages[0].content[1]"


@pytest.mark.parametrize("messages, param, problem", [
    ([user([image_part("https://example.com/cat.png")])], "messages[0].content[0].image_url.url",
     "expected a data URL"),
    ([user([image_part("data:image/png,not-base64-flagged")])], "messages[0].content[0].image_url.url", ";base64"),
    ([user([image_part("data:image/png;base64,@@@")])], "messages[0].content[0].image_url.url", "not valid base64"),
    ([user([image_part(data_url(PNG)), image_part(data_url(PNG))])], "messages[0].content[1]", "one image per request"),
    ([{"role": "assistant", "content": [image_part(data_url(PNG))]}, user("and?")], "messages[0].content[0]",
     "only user messages"),
    ([user("Hi"), {"role": "assistant", "content": "Hello"}], "messages[1].role",
     "the last message must be the user's (the query) or a tool's result"),
])
def test_what_the_router_cannot_take_is_refused_naming_the_field(messages, param, problem) -> None:
    err = refusal(chat_call, chat(messages=messages))
    assert (err.status, err.param) == (400, param) and problem in err.message and err.message.startswith(param)


@pytest.mark.parametrize("body, message", [
    ({"messages": []}, "messages: list should have at least 1 item"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role: 'robot' unknown. Available"),
    ({"messages": [user([{"type": "file", "file": "x"}])]},
     "messages[0].content[0].type: 'file' unknown"),
    ({"messages": [user([{"type": "image_url"}])]}, "messages[0].content[0]: a 'image_url' part needs"),
    ({"messages": [user("x")], "n": 2}, "n: 2 is not supported"),
    ({"messages": [user("x")], "tools": [{"type": "function"}]}, "tools[0].function: "),
    ({"messages": [user("x")], "tools": [{"type": "retrieval", "function": {}}]}, "tools[0].type: 'retrieval'"),
    ({"messages": [user("x")], "tools": {"name": "f"}}, "tools: "),
    ({"messages": [user("x")], "tools": [{"type": "function", "function": {"name": "f"}},
                                         {"type": "function", "function": {"name": "bad name!"}}]},
     "tools[1].function.name: string should match pattern"),
    ({"messages": [user("x")], "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": 5}}},
     "response_format.json_schema.schema: "),
    ({"messages": [user("x")], "tool_choice": "always"}, "tool_choice: 'always' unknown. Available: ['none'"),
    ({"messages": [user("x")], "tool_choice": {"name": "f"}}, "tool_choice: expected one of"),
    ({"messages": [user("x")], "response_format": {"type": "xml"}}, "response_format.type: 'xml'"),
    ({"messages": [user("x")], "functions": [{"name": "f"}]}, "functions: OpenAI's legacy function calling"),
    ({"messages": [user("x"), {"role": "tool", "content": "42"}]}, "messages[1]: a 'tool' message needs"),
    ({"messages": [user("x")], "temperature": "hot"}, "temperature: expected float, got 'hot'"),
    ({"messages": [user("x")]} | {"model": ""}, "model: "),
])
def test_bad_bodies_name_the_field(body, message) -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate({"model": "auto", **body})
    err = invalid_body(info.value, ChatCompletionRequest)
    assert err.status == 400 and err.message.startswith(message), err.message
    assert err.param == message.split(":")[0]


def test_fields_clients_send_and_we_do_not_use_are_accepted() -> None:
    req = chat(messages=[user("x")], user="u-1", store=False, presence_penalty=0, logprobs=False, stream_options=None)
    assert chat_call(req).request.text == "x"


@pytest.mark.parametrize("text", [
    "Good morning everyone: welcome to the show.",  # a colon: the router would speak only what follows
    "Read this aloud: 'Hello'",  # quotes: it would speak only the quoted part
    "It's John's \"big\" day",
    "“Curly” and 'straight' and \"double\": all of them",
    "ok",
    "  padded  ",
    "नमस्ते: आपका दिन शुभ हो।",
])
def test_speech_input_is_spoken_whole_by_the_routers_rule(text: str) -> None:
    """Checked against the router's own rule (model_router.routing.targets.what_to_say)."""
    call = speech_call(SpeechBody(model="auto", input=text, voice="alloy"))
    assert what_to_say(call.request.text) == text.strip()
    assert call.request.options.wire() == {"use_case": "tts"}


def test_speech_and_transcription_calls() -> None:
    assert speech_call(SpeechBody(model="tts_espeak", input="Hi there")).request.options.wire() == {
        "use_case": "tts", "model": "tts_espeak"}
    call = transcription_call(TranscriptionBody(model="auto", language="hi"), b"RIFF....")
    assert call.request.text == "" and call.request.attachments == {"audio": b"RIFF...."}
    assert call.request.options.wire() == {"use_case": "stt", "language": "hi"}
    assert call.openai_field("audio") == "file" and call.openai_field("options.language") == "language"
    with pytest.raises(ValidationError):
        SpeechBody(model="auto", input="x", response_format="mp3")


def test_verbatim_leaves_text_with_every_quote_mark_as_it_is() -> None:
    text = "\" ” ' ’ all"
    assert verbatim(text) == text


CALL = chat_call(chat(messages=[user("Hi")], temperature=0.5))


def _through_the_wire(exc: Exception, call=CALL) -> ApiError:
    """The router's exception as it crosses to the front: encoded in the router, decoded here."""
    return from_wire(WireError.parse(WireError.of(exc, "router").to_message()), call.openai_field)


@pytest.mark.parametrize("exc, status, param, code", [
    (InputError("options.sampling_parameters.temperature", "5.0 is out of range [0.0, 2.0]"), 400, "temperature", None),
    (NotFound("options.model", "'gpt-9' unknown. Available: ['smollm2_135m_instruct']"), 404, "model",
     "model_not_found"),
    (InputError("text", "empty, and no image, audio or video was given"), 400, "messages", None),
    (InputError("messages", "70 turns exceeds the limit of 64"), 400, "messages", None),
    (Overloaded("router overloaded: 16 requests running and 32 waiting"), 503, None, "overloaded"),
    (ServingError("no model could serve use case 'agent'", [("a", "b")]), 503, None, "unavailable"),
    (KeyError("x"), 500, None, None),
])
def test_router_errors_map_to_one_status_each(exc, status, param, code) -> None:
    err = _through_the_wire(exc)
    assert (err.status, err.param, err.code) == (status, param, code), err
    assert err.body()["error"]["type"] == ("invalid_request_error" if status < 500 else "server_error")
    assert ("Retry-After" in err.headers) == (code == "overloaded")
    if param:  # the message names the field as the client sent it
        assert err.message.startswith(f"{param}: ")


def test_an_error_that_is_not_ours_keeps_its_message_and_takes_its_code_kind() -> None:
    wire = WireError.parse("Request for unknown model: 'router' is not found", "StatusCode.NOT_FOUND")
    assert wire.kind is ErrorKind.NOT_FOUND and not wire.ours  # the router model itself: the server's fault
    assert from_wire(wire).status == 503 and from_wire(wire).retryable
    unhealthy = from_wire(WireError.parse("Stub process 'router_0_0' is not healthy."))
    assert unhealthy.status == 500 and unhealthy.retryable
    assert not _through_the_wire(NotFound("options.model", "'x' unknown")).retryable
    assert unreachable("connection refused").status == 503


def test_errors_of_attachments_name_the_part_they_came_from() -> None:
    call = chat_call(chat(messages=[user([{"type": "text", "text": "read"}, image_part(data_url(PNG))])]))
    assert _through_the_wire(InputError("image", "cannot decode (not an image)"), call).param == \
        "messages[0].content[1]"
    speech = transcription_call(TranscriptionBody(model="auto"), b"x")
    assert _through_the_wire(InputError("audio", "cannot decode"), speech).message == "file: cannot decode"


def test_stream_chunks_are_server_sent_events() -> None:
    text = responses.chunk("chatcmpl-1", "auto", Delta(content="Par"))
    assert text.startswith("data: ") and text.endswith("\n\n") and "\n" not in text[:-2]
    body = json.loads(text[6:])
    assert body["object"] == "chat.completion.chunk" and body["choices"][0]["delta"]["content"] == "Par"
    usage = json.loads(responses.chunk("c", "m", usage=Usage(1, 2))[6:])
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 3
    assert responses.DONE == "data: [DONE]\n\n"


def test_usage_and_finish_reason_are_the_engines() -> None:
    answer = RouterAnswer("Paris", True, {"model": "m"}, finish_reason="length", usage=Usage(12, 5))
    body = responses.chat_completion("c", "m", answer)
    assert body.choices[0].finish_reason == "length" and body.usage.total_tokens == 17
    assert responses.dump(body)["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    assert RouterAnswer.decode(answer.encode(), final=True).usage == answer.usage  # the router's counts, crossed
    with pytest.raises(ValueError, match="total_tokens"):  # OpenAI's total is the sum, never a third count
        Usage.model_validate({"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 16})
    speech = responses.chat_completion("c", "m", RouterAnswer("", True, {}, audio=b"RIFF"))
    assert speech.choices[0].finish_reason == "stop" and speech.usage is None


def test_routing_header_is_ascii_json() -> None:
    header = responses.routing_header({"model": "tts_espeak", "reason": "हिंदी"})
    assert json.loads(header["x-tmr-routing"])["reason"] == "हिंदी" and header["x-tmr-routing"].isascii()


def test_models_listed_are_those_that_answer_a_use_case_and_the_embedding_model() -> None:
    registry = load_registry()
    names = pickable(registry, "cpu")
    assert "smollm2_135m_instruct" in names and "tts_espeak" in names and "stt_whisper_base" in names
    assert names[-1] == "multilingual_e5_small"  # POST /v1/embeddings' model (OpenAI lists its own too)
    assert not {"router", "query_classifier", "ocr_tesseract", "video_frames"} & set(names)
    assert all((registry.model(n).use_cases or registry.model(n).interface == "embedding")
               and "cpu" in registry.model(n).profiles for n in names)


# -- agents: tools and structured outputs ----------------------------------------------------------
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city.", "strict": None,
                                            "parameters": {"type": "object", "required": ["city"],
                                                           "properties": {"city": {"type": "string"},
                                                                          "unit": {"default": None}}}}}
CITY = {"type": "json_schema", "json_schema": {"name": "City", "strict": True, "schema": {
    "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"], "additionalProperties": False}}}
CALLED = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def test_tools_and_the_response_format_go_to_the_router_as_sent_without_nulls() -> None:
    call = chat_call(chat(messages=[user("Weather in Paris?")], tools=[WEATHER], tool_choice="required",
                          parallel_tool_calls=False, response_format=CITY))
    sent = call.request.options.wire()
    assert json.loads(call.request.encode()["options"][0]) == sent  # what travels to the router
    function = {k: v for k, v in WEATHER["function"].items() if k != "strict"}  # null: left out
    assert sent["tools"] == [{"type": "function", "function": function}]
    assert sent["tools"][0]["function"]["parameters"]["properties"]["unit"] == {"default": None}  # a schema: whole
    assert (sent["tool_choice"], sent["parallel_tool_calls"], sent["response_format"]) == ("required", False, CITY)
    named = chat_call(chat(messages=[user("x")], tools=[WEATHER],
                           tool_choice={"type": "function", "function": {"name": "get_weather"}})).request.options.wire()
    assert named["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat_call(chat(messages=[user("x")])).request.options.wire() == {}  # nothing unasked for


def test_what_the_front_sends_is_what_the_router_takes() -> None:
    """The router's own parsers (model_router.contract.request) read the options and turns the front sends."""
    from model_router.contract.request import parse_messages, parse_options

    call = chat_call(chat(messages=[user("Weather in Paris?"), {"role": "assistant", "content": None,
                                                                 "tool_calls": [CALLED]},
                                    {"role": "tool", "tool_call_id": "call_1", "name": "get_weather",
                                     "content": [{"type": "text", "text": "18 C, sunny"}]}],
                          tools=[WEATHER], tool_choice="auto", response_format={"type": "json_object"}))
    assert [m.as_turn() for m in call.request.messages[1:]] == [
        {"role": "assistant", "content": "", "tool_calls": [CALLED]},
        {"role": "tool", "content": "18 C, sunny", "tool_call_id": "call_1"}]
    options = parse_options(call.request.encode()["options"][0])
    assert [t.function.name for t in options.tools] == ["get_weather"] and options.tool_choice == "auto"
    assert [t.role for t in parse_messages(call.request.encode()["messages"][0])] == ["user", "assistant", "tool"]


@pytest.mark.parametrize("router_field, openai_field", [
    ("options.tools[1].function.name", "tools[1].function.name"),
    ("options.tool_choice.function.name", "tool_choice.function.name"),
    ("options.parallel_tool_calls", "parallel_tool_calls"),
    ("options.response_format.json_schema.schema", "response_format.json_schema.schema"),
    ("messages[2].tool_call_id", "messages[2].tool_call_id"),
])
def test_the_routers_errors_about_tools_name_the_clients_field(router_field, openai_field) -> None:
    call = chat_call(chat(messages=[user("x")], tools=[WEATHER], response_format=CITY))
    err = _through_the_wire(InputError(router_field, "'f' is also the name of tools[0]"), call)
    assert (err.status, err.param) == (400, openai_field)
    assert err.message == f"{openai_field}: 'f' is also the name of tools[0]"


def test_a_lone_tool_result_answers_no_call_and_is_refused_naming_its_call_id() -> None:
    err = refusal(chat_call, chat(messages=[{"role": "tool", "tool_call_id": "call_9", "content": "42"}]))
    assert (err.status, err.param) == (400, "messages[0].tool_call_id") and "'call_9' answers no call" in err.message


TOOL_ANSWER = RouterAnswer("", True, {"model": "m"}, finish_reason="tool_calls", usage=Usage(40, 21),
                           tool_calls=[CALLED, {"id": "call_2", "type": "function",
                                                "function": {"name": "get_time", "arguments": "{}"}}])


def test_a_whole_answer_with_tool_calls_reads_as_openais_in_its_sdk() -> None:
    from openai.types.chat import ChatCompletion as SdkCompletion

    body = SdkCompletion.model_validate(responses.dump(responses.chat_completion("c", "m", TOOL_ANSWER)))
    choice = body.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert [c.model_dump() for c in choice.message.tool_calls] == TOOL_ANSWER.tool_calls
    plain = responses.dump(responses.chat_completion("c", "m", RouterAnswer("Hi", True, {})))
    assert "tool_calls" not in plain["choices"][0]["message"] and plain["choices"][0]["message"]["content"] == "Hi"


async def _stream_of(*answers: RouterAnswer) -> list[str]:
    from openai_front.relay import chat_stream

    async def rest():
        for answer in answers[1:]:
            yield answer

    req = chat(messages=[user("x")], stream=True, tools=[WEATHER])
    return [event async for event in chat_stream(req, answers[0], rest())]


def test_streamed_tool_calls_assemble_in_the_sdk_to_the_whole_answers() -> None:
    """OpenAI's SDK joins the deltas (id and name first, then argument pieces by index) as it would OpenAI's."""
    import asyncio

    from openai.lib.streaming.chat import ChatCompletionStreamState
    from openai.types.chat import ChatCompletionChunk as SdkChunk

    long_args = json.dumps({"city": "Saint-Rémy-de-Provence", "days": list(range(20))}, ensure_ascii=False)
    final = RouterAnswer("", True, {"model": "m"}, finish_reason="tool_calls",
                         tool_calls=[{**CALLED, "function": {"name": "get_weather", "arguments": long_args}},
                                     TOOL_ANSWER.tool_calls[1]])
    events = asyncio.run(_stream_of(RouterAnswer("Let me check. ", final=False), final))
    assert events[-1] == responses.DONE
    bodies = [json.loads(e[6:]) for e in events[:-1]]
    pieces = [b["choices"][0]["delta"]["tool_calls"][0] for b in bodies if b["choices"][0]["delta"].get("tool_calls")]
    assert pieces[0] == {"index": 0, "id": "call_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}
    assert len([p for p in pieces if p["index"] == 0]) > 2 and set(pieces[1]) == {"index", "function"}
    state = ChatCompletionStreamState()
    for body in bodies:
        state.handle_chunk(SdkChunk.model_validate(body))
    choice = state.get_final_completion().choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me check. "
    assert [c.function.arguments for c in choice.message.tool_calls] == [long_args, "{}"]
    assert [(c.id, c.function.name) for c in choice.message.tool_calls] == [("call_1", "get_weather"),
                                                                             ("call_2", "get_time")]
    assert bodies[-1]["choices"][0]["finish_reason"] == "tool_calls" and bodies[-1]["routing"] == {"model": "m"}


def test_tool_calls_the_sdk_assembled_from_a_stream_go_back_as_it_dumps_them() -> None:
    """The SDK's message keeps each call's `index` and `function.parsed_arguments`: both are dropped by name,
    and the router's turn is the contract's call; any other key in a call is refused, naming it."""
    import asyncio

    from openai.lib.streaming.chat import ChatCompletionStreamState
    from openai.types.chat import ChatCompletionChunk as SdkChunk

    state = ChatCompletionStreamState()
    for event in asyncio.run(_stream_of(TOOL_ANSWER))[:-1]:
        state.handle_chunk(SdkChunk.model_validate(json.loads(event[6:])))
    echoed = state.get_final_completion().choices[0].message.model_dump()
    assert {"index", "function"} <= set(echoed["tool_calls"][0]) and "parsed_arguments" in echoed["tool_calls"][0]["function"]
    answers = [{"role": "tool", "tool_call_id": c["id"], "content": "done"} for c in echoed["tool_calls"]]
    call = chat_call(chat(messages=[user("Weather and time?"), echoed, *answers], tools=[WEATHER]))
    assert call.request.messages[1].as_turn() == {"role": "assistant", "content": "", "tool_calls": TOOL_ANSWER.tool_calls}
    assert RouterRequest.decode(call.request.encode().get) == call.request  # the router reads the same calls
    odd = dict(echoed, tool_calls=[CALLED | {"cache_control": {"type": "ephemeral"}}])
    with pytest.raises(ValidationError) as info:
        chat(messages=[user("x"), odd, user("y")])
    err = invalid_body(info.value, ChatCompletionRequest)
    assert err.param == "messages[1].tool_calls[0].cache_control" and "unknown field" in err.message


def test_a_video_part_is_the_video_attachment_and_prefer_is_passed_on() -> None:
    call = chat_call(chat(messages=[user([{"type": "text", "text": "What happens?"},
                                         {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAA"}}])],
                          prefer="cost"))
    assert call.request.attachments == {"video": b"\x00\x00\x00"} and call.request.options.prefer == "cost"
    assert call.openai_field("video") == "messages[0].content[1]" and call.openai_field("options.prefer") == "prefer"


def test_a_streamed_speech_answer_carries_its_audio_and_visemes_in_the_last_piece() -> None:
    answer = RouterAnswer("Hello", True, {"model": "m"}, audio=b"RIFF", visemes=[{"start": 0, "end": 0.1, "viseme": "PP"}])
    body = json.loads(responses.chunk("c", "m", responses.last_delta("c", answer))[6:])
    delta = body["choices"][0]["delta"]
    assert base64.b64decode(delta["audio"]["data"]) == b"RIFF" and delta["visemes"][0]["viseme"] == "PP"
    plain = json.loads(responses.chunk("c", "m", responses.last_delta("c", RouterAnswer("Hi", True)))[6:])
    assert "audio" not in plain["choices"][0]["delta"] and "visemes" not in plain["choices"][0]["delta"]


# A forced call that max_tokens cut, as the router returns it (tools.parser): the call, its arguments as far as written.
CUT = RouterAnswer("", True, {"model": "m"}, finish_reason="length", usage=Usage(40, 8),
                   tool_calls=[{"id": "call_3", "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city": "Saint-R'}}])


def test_a_call_cut_by_max_tokens_reads_as_openais_whole_and_streamed() -> None:
    """OpenAI returns a cut call as a call (arguments as cut, no content) with finish_reason "length",
    and its SDK's parse() raises LengthFinishReasonError holding it: the same here, whole and streamed."""
    import asyncio

    from openai import LengthFinishReasonError
    from openai.lib._parsing._completions import parse_chat_completion
    from openai.lib.streaming.chat import ChatCompletionStreamState
    from openai.types.chat import ChatCompletion as SdkCompletion
    from openai.types.chat import ChatCompletionChunk as SdkChunk

    whole = SdkCompletion.model_validate(responses.dump(responses.chat_completion("c", "m", CUT)))
    choice = whole.choices[0]
    assert (choice.finish_reason, choice.message.content) == ("length", None)
    assert [c.model_dump() for c in choice.message.tool_calls] == CUT.tool_calls
    with pytest.raises(LengthFinishReasonError):
        parse_chat_completion(response_format=None, input_tools=[WEATHER], chat_completion=whole)

    events = asyncio.run(_stream_of(CUT))
    state = ChatCompletionStreamState()
    for body in (json.loads(e[6:]) for e in events[:-1]):
        state.handle_chunk(SdkChunk.model_validate(body))
    with pytest.raises(LengthFinishReasonError) as raised:
        state.get_final_completion()
    streamed = raised.value.completion.choices[0]
    assert streamed.finish_reason == "length" and not streamed.message.content
    assert [(c.id, c.function.name, c.function.arguments) for c in streamed.message.tool_calls] == \
        [("call_3", "get_weather", '{"city": "Saint-R')]


def test_a_json_answer_cut_by_max_tokens_is_its_cut_json_as_content_streamed_and_whole() -> None:
    import asyncio

    from openai.lib.streaming.chat import ChatCompletionStreamState
    from openai.types.chat import ChatCompletionChunk as SdkChunk

    whole = responses.chat_completion("c", "m", RouterAnswer('{"city": "Saint-R', True, {}, finish_reason="length"))
    assert (whole.choices[0].message.content, whole.choices[0].finish_reason) == ('{"city": "Saint-R', "length")
    assert whole.choices[0].message.tool_calls is None
    events = asyncio.run(_stream_of(RouterAnswer('{"city": ', final=False), RouterAnswer('"Saint-R', final=False),
                                    RouterAnswer("", True, {"model": "m"}, finish_reason="length")))
    state = ChatCompletionStreamState()
    for body in (json.loads(e[6:]) for e in events[:-1]):
        state.handle_chunk(SdkChunk.model_validate(body))
    snapshot = state.current_completion_snapshot.choices[0]
    assert (snapshot.message.content, snapshot.finish_reason) == ('{"city": "Saint-R', "length")
    assert not snapshot.message.tool_calls
