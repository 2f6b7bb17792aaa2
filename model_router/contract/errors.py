"""Errors across processes: a machine-readable kind, carried as JSON in the Triton error's message.

Triton's gRPC stream delivers an error's message but not its code, so the message itself is the
contract: `{"kind": ..., "message": ..., "field": ..., "retry_after_s": ...}`. The router and our
models encode with `WireError.of(exc)`; the router (for its targets), the OpenAI front and the
client decode with `WireError.parse`. A message that is not ours (Triton's own, the vLLM
backend's) is taken whole, its kind from the Triton code when one is known.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from enum import Enum

from ..errors import Cancelled, InputError, NotFound, RouterError, ServingError


class ErrorKind(str, Enum):
    BAD_INPUT = "bad_input"        # the client's fault: `field` names what to fix
    NOT_FOUND = "not_found"        # a model the router does not know or cannot use for this request
    FORBIDDEN = "forbidden"        # a model or use case the client's key may not use: `field` names the option
    OVERLOADED = "overloaded"      # turned away before starting: retry after `retry_after_s`
    UNAVAILABLE = "unavailable"    # nothing could serve it now (loads, failures, a model's process died)
    CANCELLED = "cancelled"        # the client left
    INTERNAL = "internal"          # a bug: the message says where


# Triton's error codes by kind, and back (for messages that are not ours). Triton has no code for a
# refusal by permission: it is the client's request to change, like bad input.
TRITON_CODES = {ErrorKind.BAD_INPUT: "INVALID_ARG", ErrorKind.NOT_FOUND: "NOT_FOUND",
                ErrorKind.FORBIDDEN: "INVALID_ARG", ErrorKind.OVERLOADED: "UNAVAILABLE",
                ErrorKind.UNAVAILABLE: "UNAVAILABLE", ErrorKind.CANCELLED: "CANCELLED", ErrorKind.INTERNAL: "INTERNAL"}
_FROM_CODE = {"INVALID_ARG": ErrorKind.BAD_INPUT, "NOT_FOUND": ErrorKind.NOT_FOUND,
              "UNAVAILABLE": ErrorKind.UNAVAILABLE, "CANCELLED": ErrorKind.CANCELLED}


class Forbidden(InputError):
    """The request asks for a model or a use case its key may not use (RouteOptions.allowed_models,
    allowed_use_cases); the message lists what the key may use."""


@dataclass(frozen=True)
class WireError:
    kind: ErrorKind
    message: str
    field: str | None = None
    retry_after_s: float | None = None
    limit: int | None = None  # bad input over a limit: the limit (InputError.limit)
    ours: bool = True  # False: Triton's own error (e.g. the router's stub is not healthy), not the router's

    @classmethod
    def of(cls, exc: BaseException, where: str = "") -> WireError:
        """The wire form of an exception raised while serving a request (`where`: the model, for bugs)."""
        if isinstance(exc, InputError):
            kind = ErrorKind.NOT_FOUND if isinstance(exc, NotFound) else \
                ErrorKind.FORBIDDEN if isinstance(exc, Forbidden) else ErrorKind.BAD_INPUT
            return cls(kind, str(exc), exc.field, limit=exc.limit)
        if isinstance(exc, Cancelled):
            return cls(ErrorKind.CANCELLED, str(exc))
        if isinstance(exc, ServingError):
            retry = getattr(exc, "retry_after_s", None)
            return cls(ErrorKind.OVERLOADED if retry is not None else ErrorKind.UNAVAILABLE, str(exc), None, retry)
        if isinstance(exc, RouterError):
            return cls(ErrorKind.INTERNAL, str(exc))
        return cls(ErrorKind.INTERNAL, f"{where}: {exc}" if where else str(exc))

    def to_message(self) -> str:
        body = {k: v for k, v in asdict(self).items() if v is not None and k != "ours"}
        body["kind"] = self.kind.value
        return json.dumps(body, ensure_ascii=False)

    @property
    def triton_code(self) -> str:
        return TRITON_CODES[self.kind]

    @classmethod
    def parse(cls, message: str, code: str | None = None) -> WireError:
        """Our JSON error (possibly behind a prefix Triton adds, such as "in ensemble ..."), else the
        message whole with the kind of its Triton `code`."""
        start = message.find("{")
        if start >= 0:
            try:
                body = json.loads(message[start:])
                if isinstance(body, dict) and body.get("kind") in ErrorKind._value2member_map_:
                    return cls(ErrorKind(body["kind"]), str(body.get("message", "")), body.get("field"),
                               body.get("retry_after_s"), body.get("limit"))
            except ValueError:
                pass
        return cls(_FROM_CODE.get((code or "").upper().removeprefix("STATUSCODE."), ErrorKind.INTERNAL), message,
                   ours=False)

    def raise_as(self, default_field: str = "text") -> None:
        """Raise this error as the router's exception of its kind (a target's error seen by the router)."""
        if self.kind in (ErrorKind.BAD_INPUT, ErrorKind.FORBIDDEN):
            field = self.field or default_field
            error = Forbidden if self.kind is ErrorKind.FORBIDDEN else InputError
            raise error(field, self.message.removeprefix(f"{field}: "), self.limit)
        if self.kind is ErrorKind.CANCELLED:
            raise Cancelled("by the model")
        raise ServingError(self.message)


# The JSON keys of an error's message (`ours` is not sent).
KEYS = tuple(f.name for f in fields(WireError) if f.name != "ours")
