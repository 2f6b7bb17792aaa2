"""Errors as OpenAI's error JSON, and the one place that maps the router's error kinds to HTTP statuses.

The router's errors arrive through the contract (model_router.contract.errors.WireError): a kind,
the router field at fault, a retry-after. Nothing here reads an error's prose.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, ValidationError

from model_router.contract.errors import ErrorKind, WireError
from model_router.errors import describe

UNREACHABLE_RETRY_S = 2


@dataclass
class ApiError(Exception):
    """An error response: its status, OpenAI's error object, and headers (Retry-After)."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # The router's work died before it answered (its stub, or Triton's channel): worth one more try.
    retryable: bool = False

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


def forbidden(message: str, param: str | None, what: str = "model") -> ApiError:
    """A key that may not use this model (or use case, `what`): 403, typed `permission_error` as Anthropic's
    API types its 403 (OpenAI's SDKs pick PermissionDeniedError by the status alone), coded for scripts."""
    return ApiError(403, message, "permission_error", param=param, code=f"{what}_not_allowed")


def unreachable(detail: str) -> ApiError:
    return ApiError(503, f"Triton is unreachable: {detail}", "server_error", code="unavailable",
                    headers={"Retry-After": str(UNREACHABLE_RETRY_S)}, retryable=True)


def router_gone(detail: str) -> ApiError:
    """The router stopped answering mid-request (its stub died: Triton 24.10 never ends such requests)."""
    return ApiError(503, f"the router stopped answering: {detail}", "server_error", code="unavailable",
                    headers={"Retry-After": str(UNREACHABLE_RETRY_S)}, retryable=True)


def from_wire(error: WireError, rename: Callable[[str], str] = lambda f: f) -> ApiError:
    """The router's error as the status OpenAI's clients expect; `rename` turns a router field into the
    field the client sent (translate.RouterCall.openai_field). Triton's own errors (the router model
    missing or its stub unhealthy) are the server's, and worth a retry."""
    if not error.ours and error.kind not in (ErrorKind.BAD_INPUT, ErrorKind.CANCELLED):
        status = 500 if error.kind is ErrorKind.INTERNAL else 503
        return ApiError(status, error.message, "server_error", code="unavailable" if status == 503 else None,
                        retryable=True)
    if error.kind in (ErrorKind.BAD_INPUT, ErrorKind.NOT_FOUND, ErrorKind.FORBIDDEN):
        param = rename(error.field) if error.field else None
        problem = error.message.removeprefix(f"{error.field}: ") if error.field else error.message
        message = f"{param}: {problem}" if param else problem
        if error.kind is ErrorKind.FORBIDDEN:  # the router names options.model or options.use_case
            return forbidden(message, param, (error.field or "model").rpartition(".")[2])
        if error.kind is ErrorKind.NOT_FOUND:
            return ApiError(404, message, param=param, code="model_not_found")
        return ApiError(400, message, param=param)
    if error.kind is ErrorKind.OVERLOADED:
        return ApiError(503, error.message, "server_error", code="overloaded",
                        headers={"Retry-After": str(math.ceil(error.retry_after_s or 1))})
    if error.kind is ErrorKind.CANCELLED:
        return ApiError(499, error.message, code="cancelled")
    if error.kind is ErrorKind.UNAVAILABLE:
        return ApiError(503, error.message, "server_error", code="unavailable")
    return ApiError(500, error.message, "server_error")
