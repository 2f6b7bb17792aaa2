"""Score routing policies from the answers on disk: each single model, random mixes, the oracle, and
the router's policy (hand-set or learned) with its decisions computed in process, exactly as the router
ranks (classifier + registry + routing.policy) with every model loaded."""
from __future__ import annotations

import hashlib
import statistics
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np

from ..classifier import QueryClassifier
from ..registry import Registry
from ..routing.decision import effective_use_case
from ..routing.learned import LearnedPolicy
from ..routing.policy import LiveState, Query, rank
from .answers import AnswerRecord, AnswerStore
from .fit import Outcome
from .tasks import Task

LOADED = LiveState(is_loaded=lambda m: True, blocker=lambda m, forced: "", cooling_s=lambda m: 0.0,
                   recent_failures=lambda m: 0)
MISSED = AnswerRecord("", "", "", error="sent to no text model")
MARGINS = tuple(round(x, 2) for x in np.arange(0.0, 1.001, 0.05))


@dataclass
class Score:
    """A policy on a set of tasks: each task's chosen model, and what its answers add up to."""

    name: str
    choices: dict[str, str | None]               # task id -> model (None: no text model)
    accuracy: float = 0.0
    cpu_s: float = 0.0                           # per answer
    tokens: float = 0.0                          # per answer, prompt + completion
    p50_s: float = 0.0
    p95_s: float = 0.0
    share: dict[str, float] = field(default_factory=dict)  # model -> fraction of tasks

    def row(self) -> dict:
        return {"policy": self.name, "accuracy": round(self.accuracy, 4), "cpu_s": round(self.cpu_s, 3),
                "tokens": round(self.tokens, 1), "p50_s": round(self.p50_s, 3), "p95_s": round(self.p95_s, 3),
                "share": {m: round(v, 3) for m, v in self.share.items()}}


class Graded:
    """Each (task, model) answer with its verdict, read once."""

    def __init__(self, tasks: Sequence[Task], models: Sequence[str], store: AnswerStore) -> None:
        self.tasks = {t.id: t for t in tasks}
        self.models = list(models)
        self.answers: dict[tuple[str, str], AnswerRecord] = {}
        self.right: dict[tuple[str, str], bool] = {}
        for t in tasks:
            for m in models:
                r = store.get(t.id, m)
                if r is not None and r.key == t.request_key():
                    self.answers[(t.id, m)] = r
                    self.right[(t.id, m)] = r.verdict(t).right

    def complete(self, tasks: Sequence[Task]) -> list[Task]:
        """The tasks every model has answered."""
        return [t for t in tasks if all((t.id, m) in self.answers for m in self.models)]

    def score(self, name: str, choices: Mapping[str, str | None]) -> Score:
        """The policy's answers added up; a task it sends to no text model is a wrong answer at no cost."""
        picked = [(self.answers[(t, m)], self.right[(t, m)]) if m else (MISSED, False) for t, m in choices.items()]
        latencies = sorted(r.latency_s for r, _ in picked)
        s = Score(name, dict(choices))
        if picked:
            s.accuracy = statistics.fmean(ok for _, ok in picked)
            s.cpu_s = statistics.fmean(r.cpu_s for r, _ in picked)
            s.tokens = statistics.fmean(r.tokens for r, _ in picked)
            s.p50_s = float(np.percentile(latencies, 50))
            s.p95_s = float(np.percentile(latencies, 95))
            s.share = {m: sum(c == m for c in choices.values()) / len(choices) for m in self.models}
        return s

    def mean_cost(self, model: str, tasks: Sequence[Task]) -> float:
        return statistics.fmean(self.answers[(t.id, model)].cpu_s for t in tasks)

    def outcomes(self, tasks: Sequence[Task], queries: Mapping[str, Query]) -> list[Outcome]:
        return [Outcome(m, queries[t.id].learned(), float(self.right[(t.id, m)]))
                for t in tasks for m in self.models]


def as_routed(tasks: Sequence[Task], classifier: QueryClassifier) -> dict[str, Query]:
    """Each task as the router's policy sees it (prefer left to fill in): classified, its use case decided."""
    out = {}
    for t in tasks:
        c = classifier.classify(t.prompt, ())
        agentic = bool(t.tools) or t.form == "json"
        use_case, _ = effective_use_case(c, None, (), agentic)
        out[t.id] = Query(use_case, c.language, c.complexity, tools=bool(t.tools), constrained=t.form == "json",
                          text=t.prompt)
    return out


def route_all(registry: Registry, profile: str, models: Sequence[str], routed: Mapping[str, Query],
              tasks: Sequence[Task], prefer: str, learned: LearnedPolicy | None = None,
              margin: float | None = None) -> dict[str, str | None]:
    """The model the router would pick for each task (the first candidate among `models`)."""
    choices = {}
    for t in tasks:
        query = replace(routed[t.id], prefer=prefer)
        ranking = rank(registry, profile, query, LOADED, learned, margin)
        # None: no text model would serve it (the classifier took it for speech, say): a wrong answer.
        choices[t.id] = next((c.model for c in ranking.candidates if c.model in models), None)
    return choices


def _pick(seed: str, p: float) -> bool:
    return int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < p


def random_mix(graded: Graded, tasks: Sequence[Task], cheap: str, strong: str, p: float) -> Score:
    """Each task to the strong model with probability p (fixed by the task id), else the cheap one."""
    return graded.score(f"random {int(round(p * 100))}% {strong}",
                        {t.id: strong if _pick(t.id, p) else cheap for t in tasks})


def oracle(graded: Graded, tasks: Sequence[Task], by_cost: Sequence[str]) -> Score:
    """The cheapest model that answers right (the cheapest of all when none does)."""
    return graded.score("oracle", {t.id: next((m for m in by_cost if graded.right[(t.id, m)]), by_cost[0])
                                   for t in tasks})

