"""The router's request: text, attachments and the JSON options, validated with clear errors."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .classifier import ATTACHMENT_KINDS, LANGUAGES, USE_CASES
from .errors import InputError
from .sampling import SamplingError, parse_sampling_parameters
from .text import decode_text

MAX_ATTACHMENT_BYTES = {"image": 10 * 2**20, "audio": 25 * 2**20, "video": 64 * 2**20}
MAX_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class RouteOptions:
    use_case: str | None = None
    language: str | None = None
    max_latency_ms: float | None = None
    sampling_parameters: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    allow_fallback: bool = True
    model: str | None = None
    timeout_s: float = 120.0


@dataclass(frozen=True)
class RouteRequest:
    text: str
    attachments: dict[str, bytes]
    options: RouteOptions

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.attachments)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InputError(f"options.{name}", f"{value!r} unknown. Available: {list(allowed)}")
    return value


def _number(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"options.{name}", f"expected a number, got {value!r}")
    if not lo <= value <= hi:
        raise InputError(f"options.{name}", f"{value} is out of range [{lo}, {hi}]")
    return float(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"options.{name}", f"expected true or false, got {value!r}")
    return value


_PARSERS = {
    "use_case": lambda v: _choice("use_case", v, USE_CASES),
    "language": lambda v: _choice("language", v, LANGUAGES),
    "max_latency_ms": lambda v: _number("max_latency_ms", v, 1, 3_600_000),
    "stream": lambda v: _flag("stream", v),
    "allow_fallback": lambda v: _flag("allow_fallback", v),
    "timeout_s": lambda v: _number("timeout_s", v, 0.1, MAX_TIMEOUT_S),
}


def _model_name(value: Any) -> str:
    if not isinstance(value, str) or not value or "/" in value or ".." in value or "\\" in value:
        raise InputError("options.model", f"{value!r} is not a model name (no paths)")
    return value


def parse_options(raw: bytes | str | dict | None) -> RouteOptions:
    if raw is None or raw in (b"", ""):
        return RouteOptions()
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("options", "not valid UTF-8") from None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError("options", f"not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(raw, dict):
        raise InputError("options", f"expected a JSON object, got {type(raw).__name__}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _PARSERS:
            values[key] = _PARSERS[key](value)
        elif key == "model":
            values[key] = _model_name(value)
        elif key == "sampling_parameters":
            try:  # the contract every text generator honours; checked here, before any model is loaded
                parse_sampling_parameters(value if isinstance(value, dict) else json.dumps(value))
            except SamplingError as exc:
                raise InputError("options.sampling_parameters", str(exc)) from None
            values[key] = value
        else:
            allowed = sorted(set(_PARSERS) | {"model", "sampling_parameters"})
            raise InputError(f"options.{key}", f"unknown option. Available: {allowed}")
    return RouteOptions(**values)


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
    if not text.strip() and not present:
        raise InputError("text", "empty, and no image, audio or video was given")
    return RouteRequest(text, present, parse_options(options))
