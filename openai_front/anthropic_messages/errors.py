"""Errors in Anthropic's shape: {"type": "error", "error": {"type": ..., "message": ...}}, typed by status."""
from __future__ import annotations

from typing import Any

from ..errors import ApiError

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error"}


def error_type(status: int) -> str:
    """Anthropic's type for a status; another status is a bad request (4xx) or the server's error (5xx)."""
    return ERROR_TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")


def error_body(exc: ApiError) -> dict[str, Any]:
    """The body of an error response (its message names the client's field first, as OpenAI's does)."""
    return {"type": "error", "error": {"type": error_type(exc.status), "message": exc.message}}
