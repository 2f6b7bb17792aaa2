"""The router's request: text, attachments and the JSON options, validated with clear errors."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import InputError, describe
from .jsonfield import json_object
from .sampling import parse_sampling_parameters
from .vocabulary import ATTACHMENT_KINDS, Language, UseCase

MAX_ATTACHMENT_BYTES = {"image": 10 * 2**20, "audio": 25 * 2**20, "video": 64 * 2**20}
MAX_TIMEOUT_S = 600.0


def decode_text(raw: str | bytes | None, max_chars: int, field: str = "text") -> str:
    """Return the text, or raise InputError naming `field`: bad UTF-8 or over `max_chars`."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(field, f"not valid UTF-8 (bad byte at position {exc.start})") from None
    text = raw or ""
    if len(text) > max_chars:
        raise InputError(field, f"{len(text)} characters exceeds the limit of {max_chars}")
    return text


def attachment_kinds(values: Iterable[str | bytes], field: str = "attachments") -> tuple[str, ...]:
    """Known attachment kinds, in order, once each ("" entries skipped)."""
    kinds = []
    for value in values:
        kind = (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).strip().lower()
        if kind and kind not in ATTACHMENT_KINDS:
            raise InputError(field, f"unknown kind {kind!r}. Available: {list(ATTACHMENT_KINDS)}")
        if kind:
            kinds.append(kind)
    return tuple(dict.fromkeys(kinds))


def check_query(text: str, kinds: tuple[str, ...]) -> None:
    """A query needs words or an attachment."""
    if not text.strip() and not kinds:
        raise InputError("text", "empty, and no image, audio or video was given")


class RouteOptions(BaseModel):
    """The `options` input (JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    use_case: UseCase | None = None
    language: Language | None = None
    max_latency_ms: float | None = Field(None, ge=1, le=3_600_000)
    # The contract every text generator honours; checked here, before any model is loaded.
    sampling_parameters: dict[str, Any] = Field(default_factory=dict)
    stream: bool = False
    allow_fallback: bool = True
    model: str | None = None
    timeout_s: float = Field(120.0, ge=0.1, le=MAX_TIMEOUT_S)

    @field_validator("model")
    @classmethod
    def _model_name(cls, value: str) -> str:
        if not value or "/" in value or ".." in value or "\\" in value:
            raise ValueError(f"{value!r} is not a model name (no paths)")
        return value

    @field_validator("sampling_parameters", mode="before")
    @classmethod
    def _sampling(cls, value: Any) -> Any:
        parse_sampling_parameters(value if isinstance(value, dict) else "" if value is None else str(value))
        return value


def parse_options(raw: bytes | str | dict | None) -> RouteOptions:
    values = json_object(raw, "options")
    try:
        return RouteOptions.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["loc"] == ("sampling_parameters",) and isinstance(first.get("ctx", {}).get("error"), InputError):
            inner = first["ctx"]["error"]  # names its own field: sampling_parameters.<name>
            raise InputError(f"options.{inner.field}", str(inner).partition(": ")[2]) from None
        raise InputError(*describe(exc, RouteOptions, "options", "unknown option")) from None


@dataclass(frozen=True)
class RouteRequest:
    text: str
    attachments: dict[str, bytes]
    options: RouteOptions

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.attachments)


def make_request(text: bytes | str | None, attachments: dict[str, bytes | None], options: bytes | str | None,
                 max_chars: int = 8000) -> RouteRequest:
    text = decode_text(text, max_chars)
    present = {}
    for kind, data in attachments.items():
        if kind not in ATTACHMENT_KINDS:
            raise InputError(kind, f"unknown attachment. Available: {list(ATTACHMENT_KINDS)}")
        if data:
            if len(data) > MAX_ATTACHMENT_BYTES[kind]:
                raise InputError(kind, f"{len(data)} bytes exceeds the limit of {MAX_ATTACHMENT_BYTES[kind]} bytes")
            present[kind] = data
    check_query(text, tuple(present))
    return RouteRequest(text, present, parse_options(options))
