"""Answers that max_tokens cut, through the router as OpenAI returns them: a forced tool call comes
back as that call, its arguments as far as they were written, finish_reason "length" (never the cut
JSON as plain content); a JSON answer (response_format) comes back as its cut JSON, "length"."""
from __future__ import annotations

import json

import pytest

from model_router.contract.generation import GenerateOutput
from model_router.contract.router import RouterAnswer
from model_router.errors import never

from .test_router import build, req

RETURNS = frozenset({"finish_reason", "num_input_tokens", "num_output_tokens"})
CONVERT = {"type": "function", "function": {"name": "convert", "parameters": {
    "type": "object", "properties": {"amount": {"type": "number"}, "currency": {"type": "string"}},
    "required": ["amount", "currency"]}}}
FORCED = {"tools": [CONVERT], "tool_choice": {"type": "function", "function": {"name": "convert"}}}
CITY = {"type": "json_schema", "json_schema": {"name": "city", "schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def routed(text: str, finish: str, options: dict) -> tuple[list[RouterAnswer], RouterAnswer]:
    """The router's responses when the engine writes `text` in two pieces and ends for `finish`."""
    router, _, _ = build()

    def invoke(spec, inputs, streaming, timeout_s, outputs, cancelled=never, gone=None):
        assert "structured_outputs" in json.loads(inputs["sampling_parameters"][0])
        half = len(text) // 2
        pieces = [GenerateOutput(text[:half], None, 20, 3), GenerateOutput(text[half:], finish, 20, 3)]
        yield from (p.encode(RETURNS) for p in (pieces if streaming else
                                                 [GenerateOutput(text, finish, 20, 6)]))

    router.invoke = invoke
    *pieces, done = router.route(req(options))
    assert done.final and not any(p.final for p in pieces), (pieces, done)
    return pieces, done


@pytest.mark.parametrize("stream", [False, True])
def test_a_forced_call_cut_by_max_tokens_is_the_call_as_written_and_length(stream) -> None:
    cut = '{"name":"convert","arguments":{"amount":12.5,"curr'
    pieces, done = routed(cut, "length", {**FORCED, "stream": stream})
    assert pieces == []  # a call is not streamed as words
    assert (done.text, done.finish_reason) == ("", "length")
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in done.tool_calls] == \
        [("convert", '{"amount":12.5,"curr')]
    whole = routed(cut + 'ency":"USD"}}', "stop", {**FORCED, "stream": stream})[1]
    assert whole.finish_reason == "tool_calls" and \
        json.loads(whole.tool_calls[0]["function"]["arguments"]) == {"amount": 12.5, "currency": "USD"}


@pytest.mark.parametrize("stream", [False, True])
def test_a_json_answer_cut_by_max_tokens_is_its_cut_json_and_length(stream) -> None:
    cut = '{"city":"Saint-Rémy-de-Pro'
    pieces, done = routed(cut, "length", {"response_format": CITY, "stream": stream})
    assert (done.text, done.finish_reason, done.tool_calls) == (cut, "length", None)
    assert "".join(p.text for p in pieces) == (cut if stream else "")  # streamed as it came
