"""What a cost-quality point set says: RouteLLM's average performance gap recovered, the line between
single models, the cost at which a share of the strongest model's accuracy is reached."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .policies import Score


def apgr(points: Sequence[tuple[float, float]], weak: Score, strong: Score) -> float:
    """RouteLLM's average performance gap recovered: the best accuracy reachable at each cost between the
    weak and the strong model's, as a fraction of the gap between them, averaged over that cost range."""
    gap, span = strong.accuracy - weak.accuracy, strong.cpu_s - weak.cpu_s
    if gap <= 0 or span <= 0:
        return float("nan")
    pts = [(weak.cpu_s, weak.accuracy), *points]
    xs = np.linspace(0.0, 1.0, 1001)
    best = [max(a for c, a in pts if (c - weak.cpu_s) / span <= x + 1e-12) for x in xs]
    return float(np.mean([(b - weak.accuracy) / gap for b in best]))


def frontier(singles: Sequence[Score]) -> list[tuple[float, float]]:
    """The line between single models: the upper concave hull of their (cost, accuracy) points, what
    mixing them at random reaches (a weak model between two others does not pull it down)."""
    hull: list[tuple[float, float]] = []
    for point in sorted((s.cpu_s, s.accuracy) for s in singles):
        if hull and point[1] <= hull[-1][1]:
            continue  # dearer and no better: below the line
        while len(hull) >= 2 and _turns_up(hull[-2], hull[-1], point):
            hull.pop()
        hull.append(point)
    return hull


def _turns_up(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> bool:
    """b lies on or under the segment from a to c."""
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]) >= 0


def on_line(line: list[tuple[float, float]], cost: float) -> float:
    if cost <= line[0][0]:
        return line[0][1]
    for (c0, a0), (c1, a1) in zip(line, line[1:]):
        if cost <= c1:
            return a0 + (a1 - a0) * (cost - c0) / (c1 - c0)
    return line[-1][1]


def cost_at(points: Sequence[tuple[float, float]], strong: Score, share: float = 0.95) -> float | None:
    """The least cost, as a fraction of the strong model's, at which `share` of its accuracy is reached."""
    reach = [c for c, a in points if a >= share * strong.accuracy]
    return min(reach) / strong.cpu_s if reach else None


def finite(value: Any) -> Any:
    """NaN (no gap between the weak and the strong model to recover) as null: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def points_of(scores: Sequence[Score]) -> list[tuple[float, float]]:
    return [(s.cpu_s, s.accuracy) for s in scores]
