"""The control messages (model_router.contract.control): each one as one side encodes it and the
other decodes it, round trip, and the rule for a last response."""
from __future__ import annotations

import json

import numpy as np
import pytest

from model_router.contract import router
from model_router.contract.control import KEYS, Cancel, Heartbeat, Peek, is_final, stream_parameters
from model_router.contract.generation import GenerateRequest
from model_router.contract.request import RouteOptions
from model_router.contract.router import RouterAnswer, RouterInputs, RouterRequest
from model_router.contract.tensors import from_dict, strings


class _Param:  # a gRPC InferParameter
    def __init__(self, value: bool) -> None:
        self.bool_param = value


@pytest.mark.parametrize("request_id", ["tmr-0123abcd", "x", "ünï"])
def test_a_cancel_reaches_the_backend_as_sent(request_id: str) -> None:
    cancel = Cancel(request_id)
    # pb_utils hands a backend its request's parameters as JSON text
    assert Cancel.decode(json.dumps(cancel.parameters())) == cancel
    assert Cancel.decode(cancel.parameters()) == cancel


def test_a_cancel_carries_the_text_generators_required_input() -> None:
    cancel = Cancel("r1")
    assert cancel.encode()["text_input"].tolist() == [b""] and cancel.outputs == ["text_output"]
    assert set(cancel.encode()) == set(GenerateRequest("").encode())


@pytest.mark.parametrize("parameters", ["", "{}", None, '{"other": 1}', "not json", '["tmr_cancel"]', {}])
def test_other_requests_are_not_cancellations(parameters) -> None:
    assert Cancel.decode(parameters) is None


@pytest.mark.parametrize("sent", [RouterRequest.of("hello"), RouterInputs("hello", {"stream": True})])
def test_a_heartbeat_asked_by_a_client_is_what_the_router_peeks(sent) -> None:
    asked = Heartbeat(0.5).ask(sent)
    assert Peek.decode(from_dict(asked.encode())) == Peek(ahead=False, heartbeat=Heartbeat(0.5))
    assert asked.text == sent.text and asked.stream == sent.stream  # nothing else changed


def test_a_typed_request_keeps_its_options_typed() -> None:
    asked = Heartbeat(2.0).ask(RouterRequest.of("hi", {"stream": True}))
    assert isinstance(asked.options, RouteOptions) and asked.options.heartbeat_s == 2.0 and asked.options.stream


@pytest.mark.parametrize("options, peek", [
    ({"health": True}, Peek(ahead=True)),
    ({"cache_admin": "stats"}, Peek(ahead=True)),
    ({}, Peek()),
    ({"heartbeat_s": 0.1}, Peek()),          # under RouteOptions' bound: no beats (the worker refuses it)
    ({"heartbeat_s": True}, Peek()),
    ({"heartbeat_s": "1"}, Peek()),
    ({"heartbeat_s": 3}, Peek(heartbeat=Heartbeat(3.0))),
])
def test_the_router_peeks_options_without_validating_them(options: dict, peek: Peek) -> None:
    assert Peek.decode(from_dict(RouterInputs("", options).encode())) == peek


@pytest.mark.parametrize("raw", [b"not json", b"[1]", b""])
def test_options_that_are_not_an_object_peek_as_none(raw: bytes) -> None:
    assert Peek.decode(from_dict({"options": strings(raw)})) == Peek()
    assert Peek.decode(from_dict({"options": np.array([b"{}", b"{}"], dtype=np.object_)})) == Peek()


def test_a_beat_is_an_empty_piece() -> None:
    beat = RouterAnswer.decode(Heartbeat.encode(), final=False)
    assert Heartbeat.is_beat(beat)
    assert not Heartbeat.is_beat(RouterAnswer("piece", final=False)) and not Heartbeat.is_beat(RouterAnswer(""))


def test_the_last_response_is_the_flagged_one() -> None:
    assert is_final({"triton_final_response": _Param(True)})
    assert not is_final({"triton_final_response": _Param(False)}) and not is_final({}) and not is_final(None)
    assert is_final({"triton_final_response": True})  # a plain mapping, as a test double gives it


def test_keys_name_the_options_and_inputs_they_stand_for() -> None:
    assert "heartbeat_s" in KEYS and "heartbeat_s" in RouteOptions.model_fields and "options" in router.INPUTS
    assert set(stream_parameters()) <= set(KEYS)
