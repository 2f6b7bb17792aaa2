"""What routing decides: the decision, returned with every answer (RouterAnswer.decision) as JSON."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..contract.classifier import Classification


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
