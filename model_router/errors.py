"""The router's errors. Every message names the field, the value and what is allowed.

Two families, mapped once to Triton error codes by the model adapters: InputError (the
client's fault, INVALID_ARG) and ServingError (nothing could serve it, UNAVAILABLE/INTERNAL).
"""
from __future__ import annotations


class RouterError(Exception):
    """Base of the router's own errors."""


class InputError(RouterError, ValueError):
    """A request field is missing, malformed or out of its limits."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field

    @classmethod
    def from_message(cls, message: str, default_field: str) -> InputError:
        """A model's INVALID_ARG message, which names its field first ("image[0]: cannot decode")."""
        head, sep, rest = message.partition(": ")
        if sep and head and all(c.isalnum() or c in "_.[]" for c in head):
            return cls(head, rest)
        return cls(default_field, message)


class RegistryError(RouterError):
    """The model registry is invalid; raised at startup."""


class ServingError(RouterError):
    """No model could serve the request; `tried` lists (model, reason) in order."""

    def __init__(self, message: str, tried: list[tuple[str, str]] | None = None) -> None:
        self.tried = tried or []
        detail = "; ".join(f"{m}: {r}" for m, r in self.tried)
        super().__init__(f"{message}" + (f" (tried {detail})" if detail else ""))
