"""Every interface of the contract round-trips: decode(encode(x)) == x, for generated values within
the contract's limits and for chosen ones; where the wire keeps a normal form, that form comes back."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from model_router.contract.classifier import (
    HEADS,
    Classification,
    ClassifyRequest,
    decode_classification,
    encode_classifications,
)
from model_router.contract.control import (
    FINAL_PARAMETER,
    Cancel,
    Heartbeat,
    Peek,
    is_final,
)
from model_router.contract.errors import ErrorKind, WireError
from model_router.contract.generation import ADDITIONAL, FINISH_REASONS, GenerateOutput, GenerateRequest
from model_router.contract.limits import PARAMETERS, ModelLimits
from model_router.contract.media import (
    FramesOutput,
    FramesRequest,
    OcrOutput,
    OcrRequest,
    SpeechOutput,
    SpeechRequest,
    TranscriptionOutput,
    TranscriptionRequest,
)
from model_router.contract.metrics import MetricOps
from model_router.contract.request import (
    MAX_CONVERSATION_CHARS,
    MAX_TURNS,
    Message,
    parse_messages,
    parse_options,
)
from model_router.contract.router import RouterAnswer, RouterInputs, RouterRequest, Usage
from model_router.contract.sampling import SamplingParams, parse_sampling_parameters
from model_router.contract.tensors import from_dict
from model_router.contract.tools import Tool
from model_router.errors import Cancelled, InputError, NotFound, ServingError
from model_router.routing.limits import excess
from model_router.tools.constraint import structured_outputs
from model_router.vocabulary import ATTACHMENT_KINDS, USE_CASES
from . import contract_values as cv

FAST = cv.FAST
UINT32 = st.integers(0, 2**32 - 1)


# --- the router's request --------------------------------------------------------------------------

@st.composite
def client_requests(draw: st.DrawFn) -> dict:
    """What a client may send the router: text and/or a conversation, options, attachments."""
    messages = draw(st.none() | cv.conversations())
    options, attachments = draw(cv.route_options()), draw(cv.attachments())
    # Words are optional with a conversation, an attachment, or a request answered ahead of routing.
    optional = messages is not None or attachments or options.get("health") is True or "cache_admin" in options
    text = draw(st.just("") | cv.visible_text(40) if optional else cv.visible_text(40))
    return {"text": text, "options": options, "attachments": attachments, "messages": messages}


@FAST
@given(client_requests())
def test_a_router_request_round_trips(raw: dict) -> None:
    request = RouterRequest.of(**raw)
    assert RouterRequest.decode(from_dict(request.encode())) == request


@FAST
@given(client_requests())
def test_what_a_client_sends_unchecked_decodes_as_the_checked_request(raw: dict) -> None:
    sent = RouterInputs(raw["text"], raw["options"], raw["attachments"], raw["messages"])
    expected = RouterRequest.of(**raw)
    assert RouterRequest.decode(from_dict(sent.encode())) == expected
    # Triton's HTTP generate route: the same JSON fields, no attachments (words alone must then do).
    body = from_dict({name: np.array([value.encode()], dtype=np.object_) for name, value in sent.as_json().items()})
    try:
        alone = RouterRequest.of(**{**raw, "attachments": {}})
    except InputError as exc:
        with pytest.raises(InputError) as refused:
            RouterRequest.decode(body)
        assert refused.value.field == exc.field
    else:
        assert RouterRequest.decode(body) == alone


def test_a_conversation_travels_alone_and_its_query_is_the_last_user_turn() -> None:
    history = [{"role": "user", "content": "नमस्ते, what is 2+2?"}, {"role": "assistant", "content": "4 👍"}]
    request = RouterRequest.of("और तमिल में? 🇮🇳", {"language": "hi"}, messages=history)
    assert request.text == "और तमिल में? 🇮🇳"
    assert [m.content for m in request.messages] == ["नमस्ते, what is 2+2?", "4 👍", "और तमिल में? 🇮🇳"]
    tensors = request.encode()
    assert tensors["text"][0] == b""  # the query is the conversation's last user turn, sent once
    assert RouterRequest.decode(from_dict(tensors)) == request


def test_a_tool_result_answers_the_last_user_turn() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "पुणे"}'}}
    history = [{"role": "user", "content": "Weather in Pune?"},
               {"role": "assistant", "content": "", "tool_calls": [call]},
               {"role": "tool", "content": '{"temp_c": 31}', "tool_call_id": "c1"}]
    tool = {"type": "function", "function": {"name": "weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    request = RouterRequest.of("", {"tools": [tool], "tool_choice": "auto"}, messages=history)
    assert request.text == "Weather in Pune?"
    assert RouterRequest.decode(from_dict(request.encode())) == request


def test_empty_attachments_are_dropped_and_the_rest_kept_byte_for_byte() -> None:
    image = bytes(range(256)) + b"\x00\x00"  # trailing NULs survive the BYTES tensor
    request = RouterRequest.of("what is this?", attachments={"image": image, "audio": b""})
    assert request.attachments == {"image": image}
    assert RouterRequest.decode(from_dict(request.encode())) == request


def _round_trips_or_is_refused(text: str, messages: list) -> None:
    """What `of` accepts, the router decodes as it was; at a limit, `of` itself refuses, naming messages."""
    try:
        request = RouterRequest.of(text, messages=messages, max_chars=MAX_CONVERSATION_CHARS)
    except InputError as exc:
        assert exc.field == "messages"
        return
    assert RouterRequest.decode(from_dict(request.encode()), MAX_CONVERSATION_CHARS) == request


def test_a_conversation_at_the_turn_limit_with_a_new_question() -> None:
    history = [{"role": ("user", "assistant")[i % 2], "content": "नमस्ते"} for i in range(MAX_TURNS)]
    _round_trips_or_is_refused("and now?", history)


def test_a_conversation_at_the_character_limit_with_a_new_question() -> None:
    history = [{"role": "user", "content": "க" * (MAX_CONVERSATION_CHARS - 4)}, {"role": "assistant", "content": "?"}]
    _round_trips_or_is_refused("and now?", history)


def test_a_conversation_of_control_characters_within_the_limit() -> None:
    padded = "read this:" + "\x00" * 22_000  # a NUL-padded record pasted whole: 22,010 characters, JSON 132,012
    _round_trips_or_is_refused("", [{"role": "user", "content": padded}])


# --- the router's answer -------------------------------------------------------------------------

@FAST
@given(cv.router_answers())
def test_a_router_answer_round_trips_in_its_normal_form(answer: RouterAnswer) -> None:
    # A piece carries its text only; empty lists and an empty finish_reason read as "not said".
    expected = RouterAnswer(answer.text, final=False) if not answer.final else dataclasses.replace(
        answer, visemes=answer.visemes or None, tool_calls=answer.tool_calls or None,
        finish_reason=answer.finish_reason or None)
    assert RouterAnswer.decode(answer.encode(), answer.final) == expected


def test_a_spoken_answer_round_trips() -> None:
    answer = RouterAnswer("வணக்கம்!", True, {"model": "tts", "use_case": "avatar"}, b"RIFF\x00\x01WAVE",
                          [{"t": 0.0, "viseme": "sil"}, {"t": 0.12, "viseme": "AA"}], "stop", Usage(7, 3))
    assert RouterAnswer.decode(answer.encode(), final=True) == answer
    assert answer.model == "tts"


@FAST
@given(cv.router_answers())
def test_a_router_answer_round_trips_through_its_record(answer: RouterAnswer) -> None:
    """The plain-data form keeps every field exactly (the cache keeps answers in it)."""
    record = answer.record()
    assert RouterAnswer.from_record(record) == answer
    assert record["usage"] is None or all(type(n) is int for n in record["usage"])  # plain data, not a model


def test_a_targets_responses_add_up_text_appended_and_output_tokens_summed() -> None:
    # As an engine streams: each response counts its own output tokens and the whole prompt.
    got = [RouterAnswer("Par", False, usage=Usage(9, 1)), RouterAnswer("is is", False, usage=Usage(9, 2)),
           RouterAnswer("", False, finish_reason="stop", usage=Usage(9, 1))]
    whole = RouterAnswer("", False)
    for response in got:
        whole = whole.add(response)
    assert whole == RouterAnswer("Paris is", False, finish_reason="stop", usage=Usage(9, 4))
    assert got[0] == RouterAnswer("Par", False, usage=Usage(9, 1))  # added up into a new answer, not in place


def test_adding_keeps_what_the_later_response_does_not_say() -> None:
    first = RouterAnswer("Hi", False, {"model": "m"}, b"RIFF1", [{"t": 0.0, "viseme": "sil"}], "length", Usage(4, 2))
    # Nothing said: text appended, the rest as it was (the prompt count too).
    assert first.add(RouterAnswer(" there", False)) == dataclasses.replace(first, text="Hi there")
    # Said: speech and finish_reason replaced, the prompt count the later one's.
    later = RouterAnswer("", False, audio=b"RIFF2", visemes=[{"t": 0.5, "viseme": "AA"}], finish_reason="stop",
                         usage=Usage(5, 3))
    assert first.add(later) == RouterAnswer("Hi", False, {"model": "m"}, b"RIFF2", [{"t": 0.5, "viseme": "AA"}],
                                            "stop", Usage(5, 5))
    # A count from a response after none: that response's count.
    assert RouterAnswer("", False).add(RouterAnswer("x", False, usage=Usage(7, 1))).usage == Usage(7, 1)


@FAST
@given(st.lists(st.tuples(cv.unicode_text(max_size=8), st.none() | st.tuples(st.integers(0, 999), st.integers(0, 99))),
                max_size=6))
def test_any_responses_add_up_to_their_text_and_their_summed_output_tokens(responses: list) -> None:
    whole = RouterAnswer("", False)
    for text, counts in responses:
        whole = whole.add(RouterAnswer(text, False, usage=Usage(*counts) if counts else None))
    assert whole.text == "".join(text for text, _ in responses)
    counted = [counts for _, counts in responses if counts]
    assert whole.usage == (Usage(counted[-1][0], sum(c for _, c in counted)) if counted else None)


# --- options, sampling, conversations ------------------------------------------------------------

@FAST
@given(cv.route_options())
def test_route_options_round_trip_through_their_wire_form(raw: dict) -> None:
    options = parse_options(raw)
    assert parse_options(options.wire()) == options
    assert parse_options(json.dumps(options.wire(), ensure_ascii=False).encode()) == options


@FAST
@given(st.integers(1, 8192).flatmap(lambda limit: st.tuples(st.just(limit), cv.sampling_parameters(limit))))
def test_sampling_parameters_round_trip_within_a_models_limits(case: tuple) -> None:
    limit, raw = case
    limits = ModelLimits(max_output_tokens=limit)
    params = parse_sampling_parameters(raw, limits)
    assert parse_sampling_parameters(params.wire(), limits) == params
    assert parse_sampling_parameters(json.dumps(params.wire(), ensure_ascii=False), limits) == params


@pytest.mark.parametrize("raw, expected", [
    ({"top_k": -1, "stop": "\n", "n": 1}, SamplingParams(top_k=0, stop=("\n",))),  # vLLM's spellings, normalized
    ({"max_tokens": "64", "seed": 0}, SamplingParams(max_tokens=64, seed=0)),
    ({"structured_outputs": '{"choice": ["हाँ", "नहीं"]}'},
     SamplingParams(structured_outputs={"choice": ["हाँ", "नहीं"]})),
    ({"structured_outputs": {"json": {"type": "object"}}, "temperature": 0.7},
     SamplingParams(temperature=0.7, structured_outputs={"json": {"type": "object"}})),
])
def test_chosen_sampling_parameters_come_back_in_their_normal_form(raw: dict, expected: SamplingParams) -> None:
    params = parse_sampling_parameters(raw)
    assert params == expected
    assert parse_sampling_parameters(json.dumps(params.wire())) == params


@FAST
@given(cv.conversations(last_user=False))
def test_a_conversation_round_trips(turns: list) -> None:
    messages = parse_messages(turns)
    assert messages == tuple(Message.model_validate(t) for t in turns)
    assert parse_messages(json.dumps([m.as_turn() for m in messages], ensure_ascii=False)) == messages


# --- text generation -----------------------------------------------------------------------------

@st.composite
def _generate_requests(draw: st.DrawFn) -> tuple[GenerateRequest, ModelLimits]:
    limits = ModelLimits(max_output_tokens=draw(st.integers(1, 4096)))
    turns = draw(st.none() | cv.conversations(last_user=False))
    tools = [Tool.model_validate(t).model_dump(exclude_none=True) for t in draw(cv.tools())]
    request = GenerateRequest(
        draw(cv.visible_text(80)), parse_sampling_parameters(draw(cv.sampling_parameters(limits.max_output_tokens))),
        draw(st.booleans()), draw(st.booleans()), [m.as_turn() for m in parse_messages(turns)] if turns else None,
        images=tuple(draw(st.lists(st.binary(max_size=48), max_size=3))), tools=tools or None,
        returns=frozenset(draw(st.sets(st.sampled_from(ADDITIONAL)))))
    return request, limits


@FAST
@given(_generate_requests())
def test_a_generate_request_round_trips_within_a_models_limits(case: tuple) -> None:
    request, limits = case
    assert GenerateRequest.decode(from_dict(request.encode()), 8000, limits) == request


def test_a_generate_request_keeps_its_images() -> None:
    request = GenerateRequest("<image>Describe this.", images=(b"\x89PNG\r\n\x1a\n\x00", b"GIF89a"))
    assert GenerateRequest.decode(from_dict(request.encode()), 8000) == request


def _schema_of_size(size: int) -> dict:
    schema = {"type": "object", "properties": {"place": {"type": "string", "description": ""}}}
    schema["properties"]["place"]["description"] = "x" * (size - len(json.dumps(schema)))
    return schema


@pytest.mark.parametrize("options", [
    {"tools": [{"type": "function", "function": {"name": "where", "parameters": _schema_of_size(65_536 - 16)}}],
     "tool_choice": "required"},
    {"response_format": {"type": "json_schema", "json_schema": {"schema": _schema_of_size(65_536 - 16)}}},
], ids=["forced tool", "response_format"])
def test_a_constraint_the_router_admits_for_a_model_reaches_its_engine(options: dict) -> None:
    limits, opts = ModelLimits(), parse_options(options)
    assert limits.max_schema_bytes == 65_536
    over = excess(limits, opts)
    if over is not None:  # refused before any load, naming the client's field: as good
        assert over.field in ("options.tools[0]", "options.tools", "options.response_format")
        return
    # The router's request to that model (routing.targets): the client's sampling with the constraint.
    constraint = structured_outputs(tuple(opts.tools), opts.tool_choice, opts.response_format)
    request = GenerateRequest("Where?", opts.sampling_parameters.model_copy(update={"structured_outputs": constraint}))
    assert GenerateRequest.decode(from_dict(request.encode()), 8000, limits) == request


@FAST
@given(st.builds(GenerateOutput, cv.unicode_text(max_size=40), st.sampled_from([None, *FINISH_REASONS]),
                 st.none() | UINT32, st.none() | UINT32, st.none() | st.floats(-1e6, 0, width=32)),
       st.sets(st.sampled_from(ADDITIONAL)).map(frozenset))
def test_a_generate_output_round_trips_what_was_asked_for(output: GenerateOutput, returns: frozenset) -> None:
    # What was not asked for is not sent; a count asked for but unknown reads as 0.
    def kept(name: str, empty: object) -> object:
        return (getattr(output, name) or empty) if name in returns else None

    expected = GenerateOutput(output.text, kept("finish_reason", None), kept("num_input_tokens", 0),
                              kept("num_output_tokens", 0), kept("cumulative_logprob", 0.0))
    assert GenerateOutput.decode(output.encode(returns)) == expected


def test_a_generate_outputs_last_response_round_trips() -> None:
    output = GenerateOutput("Paris है।", "stop", 12, 4, -1.5)
    assert GenerateOutput.decode(output.encode(frozenset(ADDITIONAL))) == output
    assert GenerateOutput.decode(output.encode(frozenset())) == GenerateOutput("Paris है।")


# --- the step models -----------------------------------------------------------------------------

@pytest.mark.parametrize("sent, decode, expected", [
    (SpeechRequest(" नमस्ते, दुनिया!\n", " hi "), lambda get: SpeechRequest.decode(get, 8000),
     SpeechRequest(" नमस्ते, दुनिया!\n", "hi")),  # the words exactly; the language trimmed
    (SpeechRequest("hello 👋", ""), lambda get: SpeechRequest.decode(get, 8000), SpeechRequest("hello 👋", "en")),
    (TranscriptionRequest(b"RIFF\x00\x00WAVE", " ta"), TranscriptionRequest.decode,
     TranscriptionRequest(b"RIFF\x00\x00WAVE", "ta")),
    (OcrRequest((b"\x89PNG\r\n", b"\xff\xd8\xff\x00"), "ml"), lambda get: OcrRequest.decode(get, 4),
     OcrRequest((b"\x89PNG\r\n", b"\xff\xd8\xff\x00"), "ml")),
    (FramesRequest(b"\x00\x00\x00\x18ftypmp42", 8), FramesRequest.decode,
     FramesRequest(b"\x00\x00\x00\x18ftypmp42", 8)),
    (FramesRequest(b"\x1aE\xdf\xa3"), FramesRequest.decode, FramesRequest(b"\x1aE\xdf\xa3", 0)),
])
def test_chosen_step_model_requests_round_trip(sent: object, decode: object, expected: object) -> None:
    assert decode(from_dict(sent.encode())) == expected


@pytest.mark.parametrize("sent", [
    SpeechOutput(b"RIFF\x24\x00\x00\x00WAVE", 22050, [{"t": 0.0, "viseme": "sil"}, {"t": 0.25, "viseme": "AA"}]),
    TranscriptionOutput("வணக்கம் 👋", "ta", [{"start": 0.0, "end": 1.5, "text": "வணக்கம்"}]),
    OcrOutput(("नमस्ते", "", "🇮🇳 ಕನ್ನಡ")),
    FramesOutput((b"\x89PNG1", b"\x89PNG2"), (0.0, 2.5)),
], ids=lambda sent: type(sent).__name__)
def test_chosen_step_model_outputs_round_trip(sent: object) -> None:
    assert type(sent).decode(sent.encode()) == sent


@FAST
@given(cv.unicode_text(max_size=60), cv.languages())
def test_a_speech_request_round_trips(text: str, language: str) -> None:
    request = SpeechRequest(text, language)
    expected = SpeechRequest(text, language.strip() or "en")  # the language, trimmed; none is English
    assert SpeechRequest.decode(from_dict(request.encode()), 8000) == expected


@FAST
@given(st.builds(SpeechOutput, st.binary(max_size=64), st.integers(0, 2**31 - 1),
                 st.lists(st.fixed_dictionaries({"t": st.floats(0, 60), "viseme": cv.unicode_text(1, 4)}), max_size=4)))
def test_a_speech_output_round_trips(output: SpeechOutput) -> None:
    assert SpeechOutput.decode(output.encode()) == output


@FAST
@given(st.binary(max_size=64), cv.languages())
def test_a_transcription_request_round_trips(audio: bytes, language: str) -> None:
    request = TranscriptionRequest(audio, language)
    assert TranscriptionRequest.decode(from_dict(request.encode())) == TranscriptionRequest(audio, language.strip())


@FAST
@given(st.builds(TranscriptionOutput, cv.unicode_text(max_size=60), cv.languages(),
                 st.lists(st.fixed_dictionaries({"start": st.floats(0, 1e4), "end": st.floats(0, 1e4),
                                                 "text": cv.unicode_text()}), max_size=3)))
def test_a_transcription_output_round_trips(output: TranscriptionOutput) -> None:
    assert TranscriptionOutput.decode(output.encode()) == output


@FAST
@given(st.lists(cv.binary(), min_size=1, max_size=4).map(tuple), cv.languages())
def test_an_ocr_request_round_trips(images: tuple, language: str) -> None:
    request = OcrRequest(images, language)
    assert OcrRequest.decode(from_dict(request.encode()), 4) == OcrRequest(images, language.strip() or "en")


@FAST
@given(st.lists(cv.unicode_text(max_size=40), max_size=4).map(tuple))
def test_an_ocr_output_round_trips(texts: tuple) -> None:
    assert OcrOutput.decode(OcrOutput(texts).encode()) == OcrOutput(texts)


@FAST
@given(st.builds(FramesRequest, st.binary(max_size=64), st.integers(0, 2**31 - 1)))
def test_a_frames_request_round_trips(request: FramesRequest) -> None:
    assert FramesRequest.decode(from_dict(request.encode())) == request


@FAST
@given(st.lists(st.tuples(cv.binary(), st.floats(0, 1e5, width=32)), max_size=4))
def test_a_frames_output_round_trips(frames: list) -> None:
    output = FramesOutput(tuple(f for f, _ in frames), tuple(t for _, t in frames))
    assert FramesOutput.decode(output.encode()) == output


# --- the classifier and the metrics model --------------------------------------------------------

@FAST
@given(st.lists(st.one_of(cv.unicode_text(max_size=40), st.binary(max_size=40)), min_size=1, max_size=4),
       st.lists(st.sampled_from(ATTACHMENT_KINDS), unique=True).map(tuple))
def test_a_classifier_batch_round_trips_row_by_row(texts: list, kinds: tuple) -> None:
    # Triton stacks the requests' rows along the batch dimension.
    sent = [ClassifyRequest(t, kinds).encode() for t in texts]
    batch = {name: np.concatenate([s[name] for s in sent]) for name in sent[0]}
    raw = [t if isinstance(t, bytes) else t.encode() for t in texts]
    assert ClassifyRequest.decode_batch(from_dict(batch)) == [(r, [k.encode() for k in kinds]) for r in raw]


def test_a_chosen_classifier_batch_round_trips() -> None:
    sent = [ClassifyRequest("ஒரு படத்தை விவரி", ("image",)).encode(),
            ClassifyRequest(b"\xff not UTF-8", ("audio",)).encode()]
    batch = {name: np.concatenate([s[name] for s in sent]) for name in sent[0]}
    assert ClassifyRequest.decode_batch(from_dict(batch)) == [("ஒரு படத்தை விவரி".encode(), [b"image"]),
                                                               (b"\xff not UTF-8", [b"audio"])]
    result = Classification("multimodal", "ta", "low", "image", {h: 0.5 for h in HEADS}, {u: 0.25 for u in USE_CASES})
    assert decode_classification(encode_classifications([result])) == result


@FAST
@given(st.lists(cv.classifications(), min_size=1, max_size=4))
def test_classifications_round_trip_row_by_row(rows: list) -> None:
    results = [Classification(**r) for r in rows]
    out = encode_classifications(results)
    for i, result in enumerate(results):
        assert decode_classification({name: arr[i:i + 1] for name, arr in out.items()}) == result
        assert [out[h][i][0].decode() for h in HEADS] == [getattr(result, h) for h in HEADS]
        assert out["confidence"][i].tolist() == [result.confidence[h] for h in HEADS]
        assert out["use_case_scores"][i].tolist() == [result.use_case_scores[u] for u in USE_CASES]


@FAST
@given(st.lists(st.tuples(cv.unicode_text(1, 16), st.sampled_from(["inc", "set", "observe"]),
                          st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False),
                          st.dictionaries(cv.unicode_text(1, 8), cv.unicode_text(max_size=8), max_size=3)),
                max_size=5))
def test_metric_ops_round_trip(ops: list) -> None:
    sent = MetricOps(tuple(ops))
    expected = tuple((family, how, float(value), labels) for family, how, value, labels in ops)
    assert MetricOps.decode(from_dict(sent.encode())) == MetricOps(expected)


def test_chosen_metric_ops_round_trip() -> None:
    ops = (("tmr_requests_total", "inc", 1, {"model": "smollm2", "use_case": "agent"}), ("tmr_loaded", "set", 0.5, {}))
    assert MetricOps.decode(from_dict(MetricOps(ops).encode())).ops == (
        ("tmr_requests_total", "inc", 1.0, {"model": "smollm2", "use_case": "agent"}), ("tmr_loaded", "set", 0.5, {}))


# --- errors --------------------------------------------------------------------------------------

WIRE_ERRORS = st.builds(WireError, st.sampled_from(ErrorKind), cv.unicode_text(max_size=60),
                        st.none() | cv.unicode_text(max_size=20), st.none() | st.floats(0, 3600))


@FAST
@given(WIRE_ERRORS, st.sampled_from(["", "in ensemble 'router', ", "Failed to process the request(s): "]))
def test_a_wire_error_round_trips_behind_any_prefix(error: WireError, prefix: str) -> None:
    assert WireError.parse(prefix + error.to_message(), "INTERNAL") == error


@pytest.mark.parametrize("exc, kind, field, raised", [
    (InputError("options.sampling_parameters.max_tokens", "2000 exceeds the limit of 1024"), ErrorKind.BAD_INPUT,
     "options.sampling_parameters.max_tokens", InputError),
    (NotFound("options.model", "'gpt-9' unknown"), ErrorKind.NOT_FOUND, "options.model", ServingError),
    (Cancelled("by the client"), ErrorKind.CANCELLED, None, Cancelled),
    (ServingError("no model could serve it", [("smollm2", "load failed")]), ErrorKind.UNAVAILABLE, None, ServingError),
])
def test_an_exception_round_trips_as_its_kind(exc: Exception, kind: ErrorKind, field: str | None,
                                              raised: type) -> None:
    error = WireError.parse(WireError.of(exc).to_message())
    assert (error.kind, error.field, error.message) == (kind, field, str(exc))
    # Seen from the router (a target's error): a client's fault stays one, naming the same field.
    with pytest.raises(raised) as got:
        error.raise_as()
    if raised is InputError:
        assert (got.value.field, str(got.value)) == (field, str(exc))


def test_a_message_that_is_not_ours_keeps_its_words_and_takes_its_codes_kind() -> None:
    error = WireError.parse("Request for unknown model: 'nope' is not found", "StatusCode.NOT_FOUND")
    assert error == WireError(ErrorKind.NOT_FOUND, "Request for unknown model: 'nope' is not found", ours=False)


# --- control messages and model limits ---------------------------------------------------------

@FAST
@given(cv.unicode_text(1, 40))
def test_a_cancel_round_trips_as_parameters_or_their_json(request_id: str) -> None:
    cancel = Cancel(request_id)
    assert Cancel.decode(cancel.parameters()) == cancel
    assert Cancel.decode(json.dumps(cancel.parameters(), ensure_ascii=False)) == cancel
    assert Cancel.decode(json.dumps({"other": 1})) is None


@FAST
@given(st.floats(0.2, 60), cv.route_options(), cv.visible_text())
def test_a_heartbeat_asked_for_is_peeked_and_beats_are_empty_pieces(interval: float, options: dict, text: str) -> None:
    request = Heartbeat(interval).ask(RouterRequest.of(text, options))
    tensors = request.encode()
    ahead = options.get("health") is True or "cache_admin" in options
    assert Peek.decode(from_dict(tensors)) == Peek(ahead, Heartbeat(interval))
    assert RouterRequest.decode(from_dict(tensors)) == request
    assert Heartbeat.is_beat(RouterAnswer.decode(Heartbeat.encode(), final=False))


def test_the_last_response_is_flagged_in_either_form() -> None:
    @dataclasses.dataclass
    class GrpcParameter:  # an InferParameter holds the flag in bool_param
        bool_param: bool

    assert is_final({FINAL_PARAMETER: True}) and is_final({FINAL_PARAMETER: GrpcParameter(True)})
    assert not is_final({FINAL_PARAMETER: GrpcParameter(False)}) and not is_final({FINAL_PARAMETER: False})
    assert not is_final({}) and not is_final(None)


@FAST
@given(st.builds(ModelLimits, max_output_tokens=st.integers(1, 2**20), max_prompt_tokens=st.integers(1, 2**20),
                 max_schema_bytes=st.integers(1, 2**24)))
def test_model_limits_round_trip_through_a_model_configs_parameters(limits: ModelLimits) -> None:
    parameters = {PARAMETERS[name]: str(value) for name, value in limits.model_dump().items()}
    assert ModelLimits.from_parameters(parameters) == limits
