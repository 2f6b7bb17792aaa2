"""What routing decides: the use case it serves, and the decision, returned with every answer
(RouterAnswer.decision) as JSON."""
from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from ..contract.classifier import Classification

LOW_CONFIDENCE = 0.40  # below it, a text-only query goes to the general assistant


def new_decision_id() -> str:
    """A decision's id: every answer served, a replayed one too, has its own."""
    return uuid.uuid4().hex


@dataclass
class RoutingDecision(Classification):
    """The classification as routing used it (use_case and language may be overridden), and the rest."""

    # Made with the decision (Router._decide): names this answer in feedback (options.feedback, POST /v1/feedback).
    id: str = field(default_factory=new_decision_id)
    tenant: str | None = None  # the client's key (options.tenant), None without one
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


def effective_use_case(c: Classification, asked: str | None, kinds: tuple[str, ...],
                       agentic: bool = False) -> tuple[str, str]:
    """The classifier's use case, unless the request sets one, asks for tools or a JSON answer (an
    agent's), or the classifier is unsure: (use case, why)."""
    if asked:
        return asked, f"use case set by options.use_case (classifier said {c.use_case})"
    if agentic:
        return "agent", f"tools or a structured answer asked for: agent (classifier said {c.use_case})"
    if c.confidence["use_case"] < LOW_CONFIDENCE and not kinds and c.use_case != "agent":
        return "agent", f"low confidence ({c.confidence['use_case']:.2f}) on {c.use_case}: general assistant"
    return c.use_case, f"classified {c.use_case} ({c.confidence['use_case']:.2f})"
