"""What routing produces: the decision (returned with every answer as JSON) and the events of a route."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..contract.classifier import Classification
from ..contract.router import RouterAnswer, Usage


@dataclass
class RoutingDecision(Classification):
    """The classification as routing used it (use_case and language may be overridden), and the rest."""

    model: str = ""
    reason: str = ""
    decided_by: str = ""  # the signal that decided: requested, complexity, cost, quality, language, loaded
    candidates: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    fallbacks: list[dict[str, str]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)
    cache: str = ""  # the response cache: hit | hit: semantic <similarity> | miss | skipped: <why>
    load_ms: float = 0.0
    classifier_ms: float = 0.0
    select_ms: float = 0.0
    total_ms: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass(frozen=True)
class Piece:
    """Part of the answer, sent while streaming."""

    text: str


@dataclass(frozen=True)
class Done:
    """The end of a route: the decision, the whole text, and speech when some was made."""

    decision: RoutingDecision
    text: str
    audio: bytes | None = None         # WAV
    visemes: list[dict] | None = None  # lip-sync timeline [{start, end, phoneme, viseme}]
    finish_reason: str | None = None   # as the text generator reported it
    usage: Usage | None = None         # the text generator's token counts
    tool_calls: list[dict] | None = None  # OpenAI tool calls parsed from the answer (tools.parser)

    def answer(self, streamed: bool) -> RouterAnswer:
        """The router's last response (a streamed answer's text went out in pieces already)."""
        return RouterAnswer("" if streamed else self.text, True, asdict(self.decision), self.audio, self.visemes,
                            self.finish_reason, self.usage, self.tool_calls)


Event = Piece | Done
