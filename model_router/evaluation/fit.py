"""Fit a learned routing policy (routing.learned) from graded outcomes: the routing evaluation's answers
on its learning split, or a deployment's decision log (decisions joined with their feedback).

Label variants: for each model, a tree of cells over the variant's features, coarse to fine; a cell's
probability is the Beta posterior mean of its outcomes with a prior worth `prior_weight` answers,
centered on its parent's estimate from the parent's other answers (each answer counts once; the root's
prior is the registry's `quality`), and its uncertainty the posterior's standard deviation.
Embedding variants: per model, an L2-regularized logistic regression on the query's e5 embedding
(and the labels), fitted by Newton's method.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from ..routing.learned import LABELS, Embedder, LearnedPolicy, Request, cell_key, features

PRIOR_WEIGHT = 4.0
L2 = 1.0


@dataclass(frozen=True)
class Outcome:
    """One graded answer: which model, to what kind of request, how good (0..1)."""

    model: str
    request: Request
    score: float


def fit_cells(outcomes: Iterable[Outcome], variant: str, priors: Mapping[str, float],
              prior_weight: float = PRIOR_WEIGHT) -> dict[str, dict[str, list[float]]]:
    """model -> cell key -> [p, sd, n] for every cell with at least one outcome (and the root)."""
    names = LABELS[variant]
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    for o in outcomes:
        values = o.request.labels(names)
        for depth in range(len(values) + 1):
            acc = sums[o.model][cell_key(values[:depth])]
            acc[0] += o.score
            acc[1] += 1
    cells: dict[str, dict[str, list[float]]] = {}
    for model, by_key in sums.items():
        out: dict[str, list[float]] = {}
        priors_of: dict[str, float] = {}
        for key in sorted(by_key, key=lambda k: (k.count("|") if k else -1, k)):  # parents first
            s, n = by_key[key]
            if not key:
                prior = priors.get(model, 0.5)
            else:  # the parent's estimate without this cell's own answers: each answer counts once
                parent = key.rpartition("|")[0] if "|" in key else ""
                ps, pn = by_key[parent]
                prior = (ps - s + prior_weight * priors_of[parent]) / (pn - n + prior_weight)
            priors_of[key] = prior
            a, b = s + prior_weight * prior, (n - s) + prior_weight * (1 - prior)
            p = a / (a + b)
            out[key] = [round(p, 4), round(math.sqrt(p * (1 - p) / (a + b + 1)), 4), n]
        cells[model] = out
    return cells


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, steps: int = 25) -> np.ndarray:
    """Weights w of p = sigmoid(x @ w), L2-penalized except the last (bias) column; `y` in 0..1."""
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 1e-6
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -40, 40)))
        grad = x.T @ (p - y) + penalty * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-6:
            break
    return w


def fit_weights(outcomes: Iterable[Outcome], variant: str, embed, l2: float = L2) -> dict[str, list[float]]:
    by_model: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_model[o.model].append(o)
    weights = {}
    for model, rows in by_model.items():
        x = np.stack([features(o.request, variant, embed(o.request.text)) for o in rows])
        y = np.array([o.score for o in rows], dtype=np.float64)
        weights[model] = [round(float(v), 6) for v in fit_logistic(x, y, l2)]
    return weights


def fit_policy(outcomes: list[Outcome], variant: str, priors: Mapping[str, float],
               cost: Mapping[str, float] | None = None, margins: Mapping[str, float] | None = None,
               fitted_on: dict | None = None, embedder: Embedder | None = None) -> LearnedPolicy:
    """`embedder` (text -> vector): embedding variants need it, to fit and to be used."""
    policy = LearnedPolicy(variant, cost=dict(cost or {}), fitted_on=dict(fitted_on or {}), embedder=embedder)
    if margins:
        policy.margins = dict(margins)
    if variant in LABELS:
        policy.cells = fit_cells(outcomes, variant, priors, policy.prior_weight)
    else:
        if embedder is None:
            raise ValueError(f"the {variant!r} variant needs an embedder")
        policy.weights = fit_weights(outcomes, variant, embedder)
    return policy


def outcomes_from_log(records: Iterable[dict]) -> list[Outcome]:
    """Decisions joined with their feedback (the decision log's records; the last score of an id wins)."""
    decisions: dict[str, dict] = {}
    scores: dict[str, float] = {}
    for r in records:
        if r.get("type") == "decision":
            decisions[r["id"]] = r
        elif r.get("type") == "outcome":
            scores[r["id"]] = float(r["score"])
    return [Outcome(d["model"], Request(d["use_case"], d.get("form", "text"), d["complexity"], d["language"]), s)
            for i, s in scores.items() if (d := decisions.get(i)) is not None and d.get("model")]
