"""The query text as every entry point takes it: UTF-8, within a length limit."""
from __future__ import annotations

from .errors import InputError


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
