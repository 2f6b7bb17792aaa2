"""A JSON object as a request field carries it: bytes -> UTF-8 -> JSON -> dict, or a clear error."""
from __future__ import annotations

import json
from typing import Any

from ..errors import InputError


def json_object(raw: bytes | str | dict | None, field: str) -> dict[str, Any]:
    """The object in `raw` ({} when empty); InputError naming `field` when it is not one."""
    if raw is None or raw in (b"", ""):
        return {}
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(field, "not valid UTF-8") from None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(field, f"not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(raw, dict):
        raise InputError(field, f"expected a JSON object, got {type(raw).__name__}")
    return raw
