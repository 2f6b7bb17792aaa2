"""Which model serves a request: a multi-criteria score over the use case's chain.

    score = 1.00 * quality                       (registry, 0..1)
          + 0.40 * language_fit                  (1 if the model lists the query's language)
          + 0.25 * loaded                        (1 if loaded now: no cold start)
          - 0.20 * min(expected_ms / ref_ms, 2)  (expected = latency_ms, + load_ms when not loaded;
                                                  ref = the request's max_latency_ms, else 10 s)
          - 0.15 * recent_failures               (consecutive failures not yet cooled down)
          + 0.05 * chain_prior                   (1 for the chain's primary, falling to 0 for its last)

Hard rules before scoring: a model cooling down, or one that cannot fit the memory budget even
after evicting idle models, is skipped (and said so); one whose expected latency exceeds the
request's max_latency_ms goes after every model that meets it. A model hint from the request
goes first. Ties keep the chain's order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import InputError
from ..registry import ModelSpec, Registry

REF_LATENCY_MS = 10_000.0
W_QUALITY, W_LANGUAGE, W_LOADED, W_LATENCY, W_FAILURES, W_PRIOR = 1.0, 0.40, 0.25, 0.20, 0.15, 0.05


@dataclass(frozen=True)
class LiveState:
    """What the policy may ask of the running system."""

    is_loaded: Callable[[str], bool]
    fits: Callable[[str], bool]
    cooling_s: Callable[[str], float]
    recent_failures: Callable[[str], int]


@dataclass(frozen=True)
class Candidate:
    model: str
    score: float
    expected_ms: float
    why: str


@dataclass
class Ranking:
    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def rank(registry: Registry, profile: str, use_case: str, language: str, live: LiveState,
         max_latency_ms: float | None = None, model_hint: str | None = None) -> Ranking:
    chain = list(registry.chain(profile, use_case))
    if model_hint:
        spec = registry.models.get(model_hint)
        if spec is None or spec.pinned:
            servable = sorted(m for m, s in registry.models.items() if not s.pinned and profile in s.profiles)
            raise InputError("options.model", f"{model_hint!r} unknown. Available: {servable}")
        if use_case not in spec.use_cases or profile not in spec.profiles:
            raise InputError("options.model", f"{model_hint!r} does not serve use case {use_case!r} on profile "
                                              f"{profile!r}. Available: {chain}")
        chain = [model_hint] + [m for m in chain if m != model_hint]
    ranking = Ranking()
    ref = max_latency_ms or REF_LATENCY_MS
    scored: list[tuple[bool, float, int, Candidate]] = []
    for pos, name in enumerate(chain):
        spec = registry.model(name)
        cooling = live.cooling_s(name)
        if cooling > 0:
            ranking.skipped.append((name, f"cooling down for {cooling:.0f}s after repeated failures"))
            continue
        loaded = live.is_loaded(name)
        if not loaded and not live.fits(name):
            ranking.skipped.append((name, "does not fit the memory budget (other models are pinned or busy)"))
            continue
        expected = spec.latency_ms + (0.0 if loaded else spec.load_ms)
        prior = 1.0 - pos / max(len(chain) - 1, 1)
        score = (W_QUALITY * spec.quality + W_LANGUAGE * (language in spec.languages) + W_LOADED * loaded
                 - W_LATENCY * min(expected / ref, 2.0) - W_FAILURES * live.recent_failures(name) + W_PRIOR * prior)
        if model_hint and name == model_hint:
            score += 10.0
        too_slow = max_latency_ms is not None and expected > max_latency_ms
        why = _why(spec, loaded, language, expected, too_slow, name == model_hint)
        scored.append((too_slow, -score, pos, Candidate(name, round(score, 4), expected, why)))
    ranking.candidates = [c for *_, c in sorted(scored, key=lambda t: t[:3])]
    return ranking


def _why(spec: ModelSpec, loaded: bool, language: str, expected: float, too_slow: bool, hinted: bool) -> str:
    parts = ["requested by options.model"] if hinted else []
    parts += [f"quality {spec.quality:.2f}", "loaded" if loaded else f"cold (+{spec.load_ms / 1000:.0f}s load)",
              f"expected {expected:.0f} ms"]
    parts.append(f"serves {language}" if language in spec.languages else f"not tuned for {language}")
    if too_slow:
        parts.append("over max_latency_ms")
    return ", ".join(parts)
