"""Sampling parameters of the vLLM backend's contract, parsed and checked.

The vLLM backend takes `sampling_parameters` as a JSON object whose values may be numbers or
numeric strings; we accept the same subset that a small CPU model can honour and reject
everything else with an error that names the field and what is allowed.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from .errors import InputError, describe
from .jsonfield import json_object

MAX_TOKENS_LIMIT = 4096
MAX_STOP_STRINGS = 8
# Accepted for compatibility with vLLM clients; they do not change generation here.
IGNORED = frozenset({"n", "best_of", "skip_special_tokens"})


class SamplingError(InputError):
    """A sampling parameter is unknown, of the wrong type or out of range."""


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):  # JSON true is no number, though Python's int would take it
        raise ValueError(f"expected a number, got {value!r}")
    return value


def _stop(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else list(value) if isinstance(value, tuple) else value
    if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items):
        raise ValueError(f"expected a non-empty string or a list of them, got {value!r}")
    if len(items) > MAX_STOP_STRINGS:
        raise ValueError(f"at most {MAX_STOP_STRINGS} strings, got {len(items)}")
    return tuple(items)


Int = Annotated[int, BeforeValidator(_no_bool)]
Float = Annotated[float, BeforeValidator(_no_bool)]


class SamplingParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: Int = 128  # within [1, max_tokens_limit], the serving model's limit (validation context)
    temperature: Float = Field(0.0, ge=0.0, le=2.0)
    top_p: Float = Field(1.0, ge=1e-6, le=1.0)
    top_k: Int = Field(0, ge=-1, le=1000)
    repetition_penalty: Float = Field(1.0, ge=0.5, le=2.0)
    stop: Annotated[tuple[str, ...], BeforeValidator(_stop)] = ()
    seed: Int | None = Field(None, ge=0, le=2**32 - 1)
    ignore_eos: StrictBool = False  # generate max_tokens whatever the model says (benchmarks)

    @field_validator("max_tokens")
    @classmethod
    def _within_limit(cls, value: int, info: ValidationInfo) -> int:
        limit = (info.context or {}).get("max_tokens_limit", MAX_TOKENS_LIMIT)
        if not 1 <= value <= limit:
            raise ValueError(f"{value} is out of range [1, {limit}]")
        return value

    @field_validator("top_k")
    @classmethod
    def _no_top_k(cls, value: int) -> int:
        return 0 if value == -1 else value  # vLLM's "no top-k" spelling

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def parse_sampling_parameters(raw: str | bytes | dict | None, max_tokens_limit: int = MAX_TOKENS_LIMIT) -> SamplingParams:
    """Parse the JSON `sampling_parameters` input; raise SamplingError naming the bad field."""
    try:
        values = json_object(raw, "sampling_parameters")
    except InputError as exc:
        raise SamplingError(exc.field, str(exc).partition(": ")[2]) from None
    values = {k: v for k, v in values.items() if k not in IGNORED}
    try:
        return SamplingParams.model_validate(values, context={"max_tokens_limit": max_tokens_limit})
    except ValidationError as exc:
        raise SamplingError(*describe(exc, SamplingParams, "sampling_parameters", "unknown parameter",
                                      known=set(SamplingParams.model_fields) | IGNORED)) from None
