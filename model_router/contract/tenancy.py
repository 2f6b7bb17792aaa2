"""What a client's key bounds, as the router's options carry it (RouteOptions.tenant and the rest): the
names a key and a cache namespace may have, the W3C trace context, and the order of `prefer`."""
from __future__ import annotations

import re
from typing import Literal

Prefer = Literal["quality", "balanced", "cost"]
# The options a key sets that change which model answers (RouteOptions fields): part of a cached answer's key.
ANSWER_BOUNDS = ("allowed_models", "allowed_use_cases", "prefer_ceiling")
PREFER_ORDER: tuple[str, ...] = ("cost", "balanced", "quality")  # cheapest first: a ceiling caps from above
# A tenant's name and a cache namespace: they end up in cache keys, logs and metric labels.
SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# W3C trace context, version 00: trace id and parent id in lowercase hex, neither all zeros.
TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


def capped(prefer: str, ceiling: str | None) -> str:
    """`prefer` lowered to `ceiling` where it is above it (quality > balanced > cost)."""
    if ceiling is None or PREFER_ORDER.index(prefer) <= PREFER_ORDER.index(ceiling):
        return prefer
    return ceiling


def safe_name(value: str) -> str:
    if not SAFE_NAME.fullmatch(value):
        raise ValueError(f"{value[:80]!r} must be 1 to 64 of A-Z a-z 0-9 _ . -")
    return value


def trace_context(value: str) -> str:
    if not TRACEPARENT.fullmatch(value):
        raise ValueError(f"{value[:80]!r} is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>, lowercase, "
                         "ids not all zeros)")
    return value
