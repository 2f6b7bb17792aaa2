"""The router's errors. Every message names the field, the value and what is allowed.

Two families, mapped once to Triton error codes by the model adapters: InputError (the
client's fault, INVALID_ARG) and ServingError (nothing could serve it, UNAVAILABLE/INTERNAL).
Validation is pydantic's; `describe` says its first error in that house style.
"""
from __future__ import annotations

from typing import Any, Iterable, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError


class RouterError(Exception):
    """Base of the router's own errors."""


class InputError(RouterError, ValueError):
    """A request field is missing, malformed or out of its limits."""

    def __init__(self, field: str, problem: str, limit: int | None = None) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.limit = limit  # the limit it went over, where one did (a model's: another model may take more)


class NotFound(InputError):
    """The request names a model the router does not know, or one that cannot serve it."""


class RegistryError(RouterError):
    """The model registry is invalid; raised at startup."""


class ServingError(RouterError):
    """No model could serve the request; `tried` lists (model, reason) in order."""

    def __init__(self, message: str, tried: list[tuple[str, str]] | None = None) -> None:
        self.tried = tried or []
        detail = "; ".join(f"{m}: {r}" for m, r in self.tried)
        super().__init__(f"{message}" + (f" (tried {detail})" if detail else ""))


class TargetError(ServingError):
    """A target model failed or timed out."""


class Cancelled(RouterError):
    """The client gave up on the request (cancelled it, or went away); nothing more is done for it."""

    def __init__(self, where: str = "") -> None:
        super().__init__("request cancelled by the client" + (f" ({where})" if where else ""))


def never() -> bool:
    """The cancellation check of a request that cannot be cancelled."""
    return False


def describe(exc: ValidationError, model: type[BaseModel], prefix: str, unknown: str = "unknown field",
             known: Iterable[str] | None = None) -> tuple[str, str]:
    """(field path, problem) of a pydantic error: the value, and the choices or range allowed.

    `unknown` says what an extra key is ("unknown option"); `known` lists the keys allowed
    (default: the model's fields)."""
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err["loc"] if p != "[key]"]  # a bad dict key is named by the path itself
    path = prefix + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in loc)
    value, kind, ctx = err.get("input"), err["type"], err.get("ctx") or {}
    field = model.model_fields.get(loc[0]) if loc else None
    if kind == "extra_forbidden":
        names = known or [f.alias or n for n, f in model.model_fields.items()]
        return path, f"{unknown}. Available: {sorted(names)}"
    if kind == "missing":
        return path, "required"
    if kind in ("literal_error", "enum"):
        return path, f"{value!r} unknown. Available: {_choices(field) or ctx.get('expected')}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        lo, hi = _bounds(field)
        if lo is None or hi is None:
            return path, f"{value} must be {'>=' if hi is None else '<='} {lo if hi is None else hi}"
        return path, f"{value} is out of range [{lo}, {hi}]"
    if kind == "bool_type":
        return path, f"expected true or false, got {value!r}"
    if kind in ("int_from_float",):
        return path, f"expected an integer, got {value!r}"
    if kind in ("int_parsing", "float_parsing"):
        return path, f"expected {'int' if kind == 'int_parsing' else 'float'}, got {value!r}"
    if kind in ("int_type", "float_type"):
        return path, f"expected a number, got {value!r}"
    if kind == "value_error":
        return path, str(ctx.get("error", err["msg"]))
    return path, f"{err['msg'][:1].lower()}{err['msg'][1:]}, got {value!r}"


def _choices(field: Any) -> list[Any] | None:
    """The values of the Literal inside a field's annotation (through Optional and tuples)."""
    stack = [getattr(field, "annotation", None)]
    while stack:
        t = stack.pop()
        if get_origin(t) is Literal:
            return list(get_args(t))
        stack.extend(get_args(t))
    return None


def _bounds(field: Any) -> tuple[Any, Any]:
    lo = hi = None
    for m in getattr(field, "metadata", []):
        lo = getattr(m, "ge", getattr(m, "gt", lo)) if lo is None else lo
        hi = getattr(m, "le", getattr(m, "lt", hi)) if hi is None else hi
    return lo, hi
