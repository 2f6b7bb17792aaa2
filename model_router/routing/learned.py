"""What routing has learned from outcomes: per model, the probability that its answer is right for a
kind of request, fitted from graded answers (the routing evaluation's, a deployment's feedback:
model_router/evaluation/fit.py), with its uncertainty; routing.policy reads it in place of the
registry's hand-set `quality` and `cost` where it has data.

A request is described by labels (use case, form of the answer asked: text, tools or json, the
classifier's complexity, language) or by its query's embedding (multilingual e5), or both, as the
artifact's `variant` says. For labels, each model has a tree of cells, coarse to fine
(`agent` > `agent|tools` > `agent|tools|low` > `agent|tools|low|hi`); each cell's probability is
shrunk towards its parent's by `prior_weight` pseudo-answers, so a cell seen twice says little and an
unseen one falls back to its parent. The root's prior is the registry's `quality`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..vocabulary import COMPLEXITIES, LANGUAGES, USE_CASES

ARTIFACT = Path(__file__).resolve().parent / "artifacts" / "learned_policy.json"
LABELS: dict[str, tuple[str, ...]] = {  # the features of each label variant, coarse to fine
    "labels": ("use_case", "form", "complexity", "language"),
    "no_complexity": ("use_case", "form", "language"),
}
EMBEDDING_VARIANTS = ("embedding", "both")
VARIANTS = (*LABELS, *EMBEDDING_VARIANTS)
FORMS = ("text", "tools", "json")
Embedder = Callable[[str], Sequence[float]]


def form_of(tools: bool, constrained: bool) -> str:
    """What a request asks of its answer: tool calls, JSON (or another grammar), or text."""
    return "tools" if tools else "json" if constrained else "text"


@dataclass(frozen=True)
class Request:
    """What the learned policy reads of a request."""

    use_case: str
    form: str         # text | tools | json
    complexity: str   # the classifier's label
    language: str
    text: str = ""  # the query, which embedding variants embed

    def labels(self, names: tuple[str, ...]) -> list[str]:
        return [str(getattr(self, n)) for n in names]


@dataclass(frozen=True)
class Estimate:
    p: float      # probability that the model answers right
    sd: float     # its uncertainty (posterior standard deviation; 0 when the variant gives none)
    n: float      # answers behind the finest cell used (0: the prior alone)
    cell: str     # which cell, or "embedding"


def cell_key(values: Sequence[str]) -> str:
    return "|".join(values)


def one_hot(request: Request) -> list[float]:
    """The labels as indicators, for the variants that add them to the embedding."""
    vec = [float(request.use_case == u) for u in USE_CASES] + [float(request.form == f) for f in FORMS]
    vec += [float(request.complexity == c) for c in COMPLEXITIES]
    vec += [float(request.language == lang) for lang in LANGUAGES]
    return vec


def features(request: Request, variant: str, embedding: Sequence[float]) -> np.ndarray:
    """The input of an embedding variant's logistic model: [embedding, (labels,) 1]."""
    parts = [np.asarray(embedding, dtype=np.float64)]
    if variant == "both":
        parts.append(np.asarray(one_hot(request)))
    parts.append(np.ones(1))
    return np.concatenate(parts)


@dataclass
class LearnedPolicy:
    """The artifact: per model, cells (label variants) or weights (embedding variants); the measured
    cost per answer; and per preference the margin: a model `suits` a request when its probability is
    within the margin of the best one's (routing.policy)."""

    variant: str
    prior_weight: float = 4.0
    cells: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # model -> key -> [p, sd, n]
    weights: dict[str, list[float]] = field(default_factory=dict)           # model -> logistic weights
    cost: dict[str, float] = field(default_factory=dict)                     # model -> CPU-s per answer
    margins: dict[str, float] = field(default_factory=lambda: {"quality": 0.0, "balanced": 0.1, "cost": 1.0})
    fitted_on: dict[str, Any] = field(default_factory=dict)                 # what it was fitted from
    # Embedding variants: text -> unit e5 vector (the router's: the cache's model, loaded on first use).
    embedder: Embedder | None = field(default=None, repr=False, compare=False)

    @property
    def needs_embedding(self) -> bool:
        return self.variant in EMBEDDING_VARIANTS

    def estimate(self, model: str, request: Request) -> Estimate | None:
        """None when nothing was learned of `model`."""
        if self.variant in EMBEDDING_VARIANTS:
            w = self.weights.get(model)
            if w is None or self.embedder is None or not request.text:
                return None
            z = float(np.dot(np.asarray(w), features(request, self.variant, self.embedder(request.text))))
            return Estimate(1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0))), 0.0, 0.0, "embedding")
        cells = self.cells.get(model)
        if not cells:
            return None
        values = request.labels(LABELS[self.variant])
        for depth in range(len(values), -1, -1):
            key = cell_key(values[:depth])
            if key in cells:
                p, sd, n = cells[key]
                return Estimate(p, sd, n, key or "all")
        return None

    def knows(self, model: str, request: Request) -> bool:
        """Whether outcomes of `model` on requests described exactly like this one (its finest cell,
        language included) were seen: then they, not the registry's languages, say if it serves them."""
        if self.variant not in LABELS:
            return False
        cell = self.cells.get(model, {}).get(cell_key(request.labels(LABELS[self.variant])))
        return cell is not None and cell[2] > 0

    def to_json(self) -> str:
        return json.dumps({k: getattr(self, k) for k in self.__dataclass_fields__ if k != "embedder"},
                          ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> LearnedPolicy:
        values = json.loads(text)
        if values.get("variant") not in VARIANTS:
            raise ValueError(f"variant {values.get('variant')!r} unknown. Available: {list(VARIANTS)}")
        return cls(**values)

    @classmethod
    def load(cls, path: Path | str | None, embedder: Embedder | None = None) -> LearnedPolicy | None:
        """The artifact at `path` (None or "off": none; hand-set quality and cost decide)."""
        if path is None or str(path) == "off":
            return None
        policy = cls.from_json(Path(path).read_text(encoding="utf-8"))
        policy.embedder = embedder
        return policy
