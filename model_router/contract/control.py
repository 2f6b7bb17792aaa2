"""Control messages beside a request's tensors: Triton's mark of a last response, the router's
heartbeats, and the cancellation by id that our text-generation backends take.

- The last response: Triton marks a decoupled model's last response with the response parameter
  `triton_final_response`; a gRPC stream asks for it even on an empty response
  (`triton_enable_empty_final_response`). `is_final` is the one rule for "the answer is complete".
- `Heartbeat`: a client asks the router (options.heartbeat_s) for an empty response every few
  seconds while it works, so that it can tell a router whose stub died (Triton 24.10 never ends the
  requests inside it) from one that is busy. The router peeks the interval before it validates the
  request (`Peek`), since waiting for a worker is working too.
- `Cancel`: the router stops a BLS request by its id (request parameter `tmr_cancel`) on Triton
  releases whose BLS response iterator cannot cancel (24.10). It travels as an empty text-generation
  request; the backend records the id and answers with an empty final response.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, TypeVar

from ..errors import InputError
from .generation import GenerateRequest
from .jsonfield import json_object
from .request import MIN_HEARTBEAT_S
from .router import RouterAnswer, RouterInputs, RouterRequest
from .tensors import Get, Tensors, one

FINAL_PARAMETER = "triton_final_response"                    # on a response: the request's last
EMPTY_FINAL_PARAMETER = "triton_enable_empty_final_response"  # on a gRPC request: flag an empty last one too
CANCEL_PARAMETER = "tmr_cancel"                               # on a request: the id of the request to stop
OPTIONS_INPUT = "options"                                     # the router's input that carries them (router.INPUTS)
HEARTBEAT_OPTION = "heartbeat_s"                              # RouteOptions.heartbeat_s
KEYS = (FINAL_PARAMETER, EMPTY_FINAL_PARAMETER, CANCEL_PARAMETER, HEARTBEAT_OPTION)
Request = TypeVar("Request", RouterRequest, RouterInputs)


def is_final(parameters: Mapping[str, Any] | None) -> bool:
    """Whether a response is its request's last (Triton's flag; over gRPC an InferParameter, whose
    `bool_param` holds it). `.get`, not `[]`: a protobuf map would add the key it is asked for."""
    flag = (parameters or {}).get(FINAL_PARAMETER)
    return bool(getattr(flag, "bool_param", flag)) if flag is not None else False


def stream_parameters() -> dict[str, bool]:
    """The parameters of a request sent on a gRPC stream: its last response is flagged even when empty."""
    return {EMPTY_FINAL_PARAMETER: True}


@dataclass(frozen=True)
class Heartbeat:
    """An empty response every `interval_s` seconds while the router works on a request."""

    interval_s: float

    def ask(self, request: Request) -> Request:
        """`request` (typed, or a client's unchecked RouterInputs), asking the router for beats."""
        options = request.options
        if isinstance(options, dict):
            return dataclasses.replace(request, options={**options, HEARTBEAT_OPTION: self.interval_s})
        return dataclasses.replace(request, options=options.model_copy(update={HEARTBEAT_OPTION: self.interval_s}))

    @staticmethod
    def encode() -> Tensors:
        """One beat: a response with no text, not the last."""
        return RouterAnswer("", final=False).encode()

    @staticmethod
    def is_beat(answer: RouterAnswer) -> bool:
        return not answer.final and not answer.text


@dataclass(frozen=True)
class Peek:
    """What the router acts on before it admits a request, read cheaply from the options' JSON: the
    whole request is validated on a worker, which names any fault (so a fault here is just ignored)."""

    ahead: bool = False                  # a health check, a cache request or feedback: answered ahead of the queue
    heartbeat: Heartbeat | None = None   # beats from admission on

    @classmethod
    def decode(cls, get: Get) -> Peek:
        try:
            options = _json_object(one(get, OPTIONS_INPUT))
        except InputError:  # more than one element
            options = {}
        # RouteOptions.health, .cache_admin, .feedback
        ahead = options.get("health") is True or "cache_admin" in options or "feedback" in options
        beat = options.get(HEARTBEAT_OPTION)
        valid = isinstance(beat, (int, float)) and not isinstance(beat, bool) and beat >= MIN_HEARTBEAT_S
        return cls(ahead, Heartbeat(float(beat)) if valid else None)


@dataclass(frozen=True)
class Cancel:
    """Stop the request whose id is `request_id`, wherever it is (running, waiting, or not arrived yet)."""

    request_id: str

    def encode(self) -> Tensors:
        """An empty prompt: Triton refuses a request without the text generator's required input."""
        return GenerateRequest("").encode()

    def parameters(self) -> dict[str, str]:
        return {CANCEL_PARAMETER: self.request_id}

    @property
    def outputs(self) -> list[str]:
        return GenerateRequest("").outputs

    @classmethod
    def decode(cls, parameters: str | Mapping[str, Any] | None) -> Cancel | None:
        """The cancellation a request carries (pb_utils gives a request's parameters as JSON text);
        None for any other request."""
        values = _json_object(parameters) if not isinstance(parameters, Mapping) else parameters
        target = values.get(CANCEL_PARAMETER)
        return cls(str(target)) if target else None


def _json_object(raw: Any) -> dict[str, Any]:
    """The JSON object in `raw` ({} when it is not one: the whole request is validated elsewhere)."""
    try:
        return json_object(raw, OPTIONS_INPUT)
    except InputError:
        return {}
