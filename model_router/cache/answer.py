"""A whole answer as the cache keeps it, and its compact form (msgpack: audio stays bytes)."""
from __future__ import annotations

from dataclasses import dataclass, field

import msgpack

from ..contract.router import RouterAnswer

FORMAT = 2  # bumped when the layout changes: an older entry reads as a miss, never as a wrong answer


@dataclass(frozen=True)
class CachedAnswer:
    """The router's last response as it was sent (the one answer shape, its decision included), and the
    pieces it was streamed in (replayed to a streaming client)."""

    answer: RouterAnswer
    pieces: list[str] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return msgpack.packb([FORMAT, {"answer": self.answer.record(), "pieces": self.pieces}], use_bin_type=True)

    @classmethod
    def from_bytes(cls, blob: bytes) -> CachedAnswer | None:
        """The answer, or None for an entry of another format or a damaged one."""
        try:
            version, values = msgpack.unpackb(blob, raw=False)
            if version != FORMAT:
                return None
            return cls(RouterAnswer.from_record(values["answer"]), list(values["pieces"]))
        except (ValueError, TypeError, KeyError, msgpack.UnpackException):
            return None
