"""Sampling parameters of the vLLM backend's contract, parsed and checked.

The vLLM backend takes `sampling_parameters` as a JSON object whose values may be numbers or
numeric strings; we accept the same subset that a small CPU model can honour and reject
everything else with an error that names the field and what is allowed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAX_TOKENS_LIMIT = 4096
MAX_STOP_STRINGS = 8


class SamplingError(ValueError):
    """A sampling parameter is unknown, of the wrong type or out of range."""


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = field(default_factory=tuple)
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def _number(name: str, value: Any, kind: type, lo: float, hi: float) -> Any:
    if isinstance(value, bool):
        raise SamplingError(f"sampling_parameters.{name}: expected a number, got {value!r}")
    try:
        num = kind(value)
    except (TypeError, ValueError):
        raise SamplingError(f"sampling_parameters.{name}: expected {kind.__name__}, got {value!r}") from None
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise SamplingError(f"sampling_parameters.{name}: expected an integer, got {value!r}")
    if not lo <= num <= hi:
        raise SamplingError(f"sampling_parameters.{name}: {num} is out of range [{lo}, {hi}]")
    return num


def _stop(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items):
        raise SamplingError(f"sampling_parameters.stop: expected a non-empty string or a list of them, got {value!r}")
    if len(items) > MAX_STOP_STRINGS:
        raise SamplingError(f"sampling_parameters.stop: at most {MAX_STOP_STRINGS} strings, got {len(items)}")
    return tuple(items)


_FIELDS = {
    "max_tokens": lambda v, hi: _number("max_tokens", v, int, 1, hi),
    "temperature": lambda v, hi: _number("temperature", v, float, 0.0, 2.0),
    "top_p": lambda v, hi: _number("top_p", v, float, 1e-6, 1.0),
    "top_k": lambda v, hi: _number("top_k", v, int, -1, 1000),
    "repetition_penalty": lambda v, hi: _number("repetition_penalty", v, float, 0.5, 2.0),
    "stop": lambda v, hi: _stop(v),
    "seed": lambda v, hi: _number("seed", v, int, 0, 2**32 - 1),
}
# Accepted for compatibility with vLLM clients; they do not change generation here.
_IGNORED = {"n", "best_of", "ignore_eos", "skip_special_tokens"}


def parse_sampling_parameters(raw: str | bytes | dict | None, max_tokens_limit: int = MAX_TOKENS_LIMIT) -> SamplingParams:
    """Parse the JSON `sampling_parameters` input; raise SamplingError naming the bad field."""
    if raw is None or raw == "" or raw == b"":
        return SamplingParams()
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SamplingError("sampling_parameters: not valid UTF-8") from None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SamplingError(f"sampling_parameters: not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(raw, dict):
        raise SamplingError(f"sampling_parameters: expected a JSON object, got {type(raw).__name__}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _IGNORED:
            continue
        if key not in _FIELDS:
            allowed = sorted(set(_FIELDS) | _IGNORED)
            raise SamplingError(f"sampling_parameters.{key}: unknown parameter. Available: {allowed}")
        values[key] = _FIELDS[key](value, max_tokens_limit)
    if "top_k" in values and values["top_k"] == -1:
        values["top_k"] = 0  # vLLM's "no top-k" spelling
    return SamplingParams(**values)
