"""Errors as OpenAI's error JSON, and the one place that maps the router's errors to HTTP statuses.

The router's errors reach us as text only: Triton's gRPC stream carries an error's message but not
its code. The router's messages are made to be read, though: a client's mistake starts with the
router field it is about ("options.sampling_parameters.temperature: 5 is out of range [0.0, 2.0]",
model_router.errors.InputError); a full router says "router overloaded" (serving/admission.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from model_router.errors import describe

if TYPE_CHECKING:
    from .translate import RouterCall

# Where a client's mistake can be, as the router names it (its inputs; `options` and its keys).
ROUTER_FIELDS = ("text", "image", "audio", "video", "options", "messages")
_FIELD_FIRST = re.compile(r"^(?P<path>[A-Za-z_]\w*(?:\.\w+|\[\d+\])*): (?P<problem>.+)$", re.S)
OVERLOADED = "router overloaded"
RETRY_AFTER_S = 2  # a worker frees up within seconds at the rates two cores serve (README, Numbers)


@dataclass
class ApiError(Exception):
    """An error response: its status, OpenAI's error object, and headers (Retry-After)."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(param: str, problem: str) -> ApiError:
    return ApiError(400, f"{param}: {problem}", param=param)


def invalid_body(exc: ValidationError, model: type[BaseModel]) -> ApiError:
    """A request body that failed validation, the field named as the client spelled it."""
    path, problem = describe(exc, model, "")
    return bad_request(path.lstrip("."), problem)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, code="invalid_api_key")


def from_router(message: str, call: RouterCall | None = None, unreachable: bool = False) -> ApiError:
    """The router's (or Triton's) error as the status OpenAI's clients expect.

    400 a field of the request (named as the client sent it), 404 a model the router does not
    know, 503 a full router or an unreachable Triton (both with Retry-After), 500 anything else."""
    if OVERLOADED in message or unreachable:
        return ApiError(503, message if not unreachable else f"Triton is unreachable: {message}", "server_error",
                        code="overloaded" if not unreachable else "unavailable",
                        headers={"Retry-After": str(RETRY_AFTER_S)})
    match = _FIELD_FIRST.match(message)
    if match and re.split(r"[.\[]", match["path"])[0] in ROUTER_FIELDS:
        param = call.openai_field(match["path"]) if call is not None else match["path"]
        problem = match["problem"]
        if match["path"] == "options.model" and " unknown. Available" in problem:
            return ApiError(404, f"{param}: {problem}", param=param, code="model_not_found")
        return bad_request(param, problem)
    return ApiError(500, message, "server_error")
