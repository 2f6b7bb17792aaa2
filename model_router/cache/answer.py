"""A whole answer as the cache keeps it, and its compact form (msgpack: audio stays bytes)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import msgpack

FORMAT = 1  # bumped when the layout changes: an older entry reads as a miss, never as a wrong answer


@dataclass(frozen=True)
class CachedAnswer:
    """What the router sent: the text, its streamed pieces (replayed to a streaming client), speech,
    visemes, tool calls, why it finished, usage, and the routing decision that produced it."""

    text: str
    pieces: list[str] = field(default_factory=list)
    audio: bytes | None = None
    visemes: Any = None
    tool_calls: list | None = None
    finish_reason: str = "stop"
    usage: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return msgpack.packb([FORMAT, asdict(self)], use_bin_type=True)

    @classmethod
    def from_bytes(cls, blob: bytes) -> CachedAnswer | None:
        """The answer, or None for an entry of another format or a damaged one."""
        try:
            version, values = msgpack.unpackb(blob, raw=False)
            return cls(**values) if version == FORMAT else None
        except (ValueError, TypeError, msgpack.UnpackException):
            return None
