"""Which model serves a request: a multi-criteria score over the use case's chain.

    score = wq * quality                         (registry, 0..1)
          - wc * cost / max cost in the chain     (registry: relative cost of an output token)
          + ws * suits                            (1 if the model handles the complexity needed well)
          + 0.50 * sees                           (1 if it takes the attached image or video itself,
                                                   rather than text read from it)
          + 0.25 * loaded                         (1 if loaded now: no cold start)
          - 0.20 * min(expected_ms / ref_ms, 2)   (expected = latency_ms, + load_ms when not loaded;
                                                   ref = the request's max_latency_ms, else 10 s)
          - 0.15 * recent_failures                (consecutive failures not yet cooled down)
          + 0.05 * chain_prior                    (1 for the chain's primary, falling to 0 for its last)

The weights (wq, wc, ws) follow options.prefer, like RouteLLM's threshold: `quality` (1, 0, 1) takes
the best model that handles the query (a cold one over a loaded one that does not); `balanced` (0.3, 0.6,
1.0, the default) the cheapest model whose quality suffices for the query's complexity; `cost` (0.1, 1.0,
0.3) the cheapest. A query of high complexity always gets the quality weights (the best model is worth
its cost there), and so do chains of models that do not write text (speech, transcription: complexity
says nothing of them). A request with tools or an output grammar needs high complexity whatever the
classifier said: small models call tools and write to a schema poorly (`Query.needs`).

Hard rules before scoring: a model recovering from a dead stub, one cooling down, or one that
cannot be loaded now (it would not fit the memory budget even after evicting idle models, it
would evict a model within its minimum residency, or it was loaded too often lately) is skipped
(and said so); so is a model that does not list the query's language when one that does can serve
(unless a learned policy has outcomes of it on requests like this one, language included). A client's key
may keep it to some models (`Query.allowed`) and cap the weights at its `ceiling` (high complexity's too).
One whose expected latency exceeds the request's max_latency_ms goes after every model that meets
it. A model hint from the request goes first. Ties keep the chain's order. `Ranking.decided_by`
names the signal that decided (requested, complexity, cost, quality, language, loaded, learned).

With a learned policy (routing.learned) that has outcomes of models on offer, outcomes replace
judgement: `quality` is the model's probability of a right answer for this kind of request, `cost` its
measured CPU-seconds per answer, and a model `suits` the request when its probability is within the
preference's margin of the best one's (fitted on graded answers: 0 for quality, so only the best
suits). Tools and structured answers then need no forced high complexity: the data say which models
handle them. A model it has no outcomes of only backs up those it has (ranked after them).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from ..contract.tenancy import capped
from ..errors import NotFound
from ..registry import ModelSpec, Registry
from ..vocabulary import COMPLEXITIES
from .learned import Estimate, LearnedPolicy, Request, form_of

REF_LATENCY_MS = 10_000.0
W_SEES, W_LOADED, W_LATENCY, W_FAILURES, W_PRIOR = 0.50, 0.25, 0.20, 0.15, 0.05
PREFERENCES: dict[str, tuple[float, float, float]] = {  # (quality, cost, suits)
    "quality": (1.0, 0.0, 1.0), "balanced": (0.3, 0.6, 1.0), "cost": (0.1, 1.0, 0.3)}
NOT_ALLOWED = "not allowed for this key"


@dataclass(frozen=True)
class LiveState:
    """What the policy may ask of the running system."""

    is_loaded: Callable[[str], bool]
    blocker: Callable[[str, bool], str]       # (model, forced) -> why it cannot be loaded now, "" if it can
    cooling_s: Callable[[str], float]
    recent_failures: Callable[[str], int]
    recovering: Callable[[str], str] = lambda model: ""  # why it is out while its stub is reloaded


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
    decided_by: str = ""


@dataclass(frozen=True)
class Query:
    """What the policy weighs of a request."""

    use_case: str
    language: str
    complexity: str = "medium"
    prefer: str = "balanced"
    max_latency_ms: float | None = None
    model_hint: str | None = None
    force: bool = False  # an admin's request: the hinted model may evict models within their residency
    attachments: tuple[str, ...] = ()
    tools: bool = False        # the request offers tools the model may call
    constrained: bool = False  # its output must follow a grammar (JSON, a forced tool call)
    too_big: dict[str, str] = field(default_factory=dict)  # models whose limits it exceeds, and how (routing.limits)
    text: str = ""  # the query, for a learned policy that embeds it
    allowed: list[str] | None = None  # the models the client's key may use (None: any)
    ceiling: str | None = None  # the highest preference the client's key gets (None: any)

    @property
    def needs(self) -> str:
        """The complexity a model must handle: the classifier's, high for an agent's tools or structured answer."""
        return "high" if self.tools or self.constrained else self.complexity

    @property
    def form(self) -> str:
        """What is asked of the answer: tool calls, JSON (or another grammar), or text."""
        return form_of(self.tools, self.constrained)

    def learned(self) -> Request:
        return Request(self.use_case, self.form, self.complexity, self.language, self.text)


@dataclass(frozen=True)
class Judged:
    """How the policy sees one model for this request: hand-set (registry) or learned."""

    quality: float
    cost: float
    suits: bool
    estimate: Estimate | None = None
    vouched: bool = True  # False: a learned policy has no outcomes of it, so it only backs up those it has


def sees(spec: ModelSpec, attachments: tuple[str, ...]) -> bool:
    """Does the model take the attached pictures itself (video goes as its frames, i.e. images)?"""
    return bool({"image", "video"} & set(attachments)) and "image" in spec.media


def suits(spec: ModelSpec, complexity: str) -> bool:
    """Does the model handle queries of this complexity well (its registry `complexity` or above)?"""
    return COMPLEXITIES.index(spec.complexity) >= COMPLEXITIES.index(complexity)


def rank(registry: Registry, profile: str, query: Query, live: LiveState, learned: LearnedPolicy | None = None,
         margin: float | None = None) -> Ranking:
    """The chain's models that can serve now, best first, and those skipped with the reason. `learned`
    replaces hand-set quality and cost where it knows every model on offer; `margin` overrides its
    preference's margin (the evaluation sweeps it)."""
    chain = _chain(registry, profile, query)
    allowed = [name for name in chain if query.allowed is None or name in query.allowed]
    ranking = Ranking(skipped=[(name, NOT_ALLOWED) for name in chain if name not in allowed])
    usable = [name for name in allowed if not _lacks(registry.model(name), query, ranking)
              and not _skip(name, query, live, ranking)]
    # Outcomes of a model in this language (routing.learned) say whether it serves it, not its registry list.
    speaks = [m for m in usable if query.language in registry.model(m).languages
              or (learned is not None and learned.knows(m, query.learned()))]
    if speaks:  # a model that does not list the language never serves it while one that does can
        for name in usable:
            if name not in speaks and name != query.model_hint:
                ranking.skipped.append((name, f"does not list {query.language}; {speaks[0]} does"))
        usable = [m for m in usable if m in speaks or m == query.model_hint]
    # Complexity and cost weigh answers to write; speech and the like go by quality.
    writers = all(registry.model(m).interface == "text-generation" for m in usable)
    judged = _judge(registry, usable, query, learned if writers else None, margin)
    learnt = any(j.estimate for j in judged.values())
    weights = PREFERENCES[capped("quality" if not writers or (query.needs == "high" and not learnt) else query.prefer,
                                 query.ceiling)]

    def ranked(state: LiveState) -> list[Candidate]:
        scored = [_score(registry.model(name), chain.index(name), len(chain), query, state, weights, judged[name])
                  for name in usable]
        return [c for *_, c in sorted(scored, key=lambda t: t[:-1])]

    ranking.candidates = ranked(live)
    first = ranking.candidates[0].model if ranking.candidates else ""
    # Loaded state decided when the first would not lead were it cold too.
    as_if_cold = replace(live, is_loaded=lambda m: m != first and live.is_loaded(m))
    by_loaded = live.is_loaded(first) and ranked(as_if_cold)[0].model != first
    ranking.decided_by = _decided_by(registry, ranking, query, by_loaded, weights, learnt)
    return ranking


def _judge(registry: Registry, usable: list[str], query: Query, learned: LearnedPolicy | None,
           margin: float | None) -> dict[str, Judged]:
    """Each usable model's quality, cost and fit: learned when the policy knows some of them (a model it
    has no outcomes of keeps its hand-set quality, and its registry cost in the learned costs' scale),
    else hand-set."""
    try:
        estimates = {m: learned.estimate(m, query.learned()) for m in usable} if learned else {}
    except Exception:  # the embedding model failed, say: what was learned is a help, never a reason to fail
        estimates = {}
    if any(estimates.values()):
        specs = {m: registry.model(m) for m in usable}
        known = [learned.cost[m] / specs[m].cost for m in usable if m in learned.cost and specs[m].cost > 0]
        scale = sorted(known)[len(known) // 2] if known else 1.0
        costs = {m: learned.cost.get(m, specs[m].cost * scale) for m in usable}
        top_cost = max(costs.values()) or 1.0
        est = {m: e or Estimate(specs[m].quality, 0.0, 0.0, "registry") for m, e in estimates.items()}
        best = max(e.p for m, e in est.items() if estimates[m])
        cut = best - (learned.margins.get(query.prefer, 0.0) if margin is None else margin)
        return {m: Judged(e.p, costs[m] / top_cost, e.p >= cut - 1e-9 and bool(estimates[m]), e, bool(estimates[m]))
                for m, e in est.items()}
    top_cost = max((registry.model(m).cost for m in usable), default=1.0) or 1.0
    return {m: Judged(registry.model(m).quality, registry.model(m).cost / top_cost,
                      suits(registry.model(m), query.needs)) for m in usable}


def _chain(registry: Registry, profile: str, query: Query) -> list[str]:
    chain = list(registry.chain(profile, query.use_case))
    hint = query.model_hint
    if not hint:
        return chain
    spec = registry.models.get(hint)
    if spec is None or spec.pinned:
        servable = sorted(m for m, s in registry.models.items() if s.use_cases and profile in s.profiles)
        raise NotFound("options.model", f"{hint!r} unknown. Available: {servable}")
    if query.use_case not in spec.use_cases or profile not in spec.profiles:
        raise NotFound("options.model", f"{hint!r} does not serve use case {query.use_case!r} on profile "
                                          f"{profile!r}. Available: {chain}")
    return [hint] + [m for m in chain if m != hint]


def _lacks(spec: ModelSpec, query: Query, ranking: Ranking) -> bool:
    """A model without what the request needs (the registry's `tools`, `structured_output`, limits
    the request fits in) never serves it."""
    why = query.too_big.get(spec.name, "")
    if not why and query.tools and not spec.tools:
        why = "takes no tools (registry: tools)"
    elif not why and query.constrained and not spec.structured_output:
        why = "cannot enforce an output grammar (registry: structured_output)"
    if why:
        ranking.skipped.append((spec.name, why))
    return bool(why)


def _skip(name: str, query: Query, live: LiveState, ranking: Ranking) -> bool:
    """Apply the hard rules; True (and the reason recorded) when `name` cannot serve now."""
    why = live.recovering(name)
    if not why and live.cooling_s(name) > 0:
        why = f"cooling down for {live.cooling_s(name):.0f}s after repeated failures"
    if not why and not live.is_loaded(name):
        blocker = live.blocker(name, query.force and name == query.model_hint)
        why = f"cannot be loaded now: {blocker}" if blocker else ""
    if why:
        ranking.skipped.append((name, why))
    return bool(why)


def _score(spec: ModelSpec, pos: int, n: int, query: Query, live: LiveState, weights: tuple[float, float, float],
           judged: Judged) -> tuple[bool, bool, float, int, Candidate]:
    wq, wc, ws = weights
    loaded = live.is_loaded(spec.name)
    expected = spec.latency_ms + (0.0 if loaded else spec.load_ms)
    ref = query.max_latency_ms or REF_LATENCY_MS
    fit, looks = judged.suits, sees(spec, query.attachments)
    score = (wq * judged.quality - wc * judged.cost + ws * fit + W_SEES * looks + W_LOADED * loaded
             - W_LATENCY * min(expected / ref, 2.0) - W_FAILURES * live.recent_failures(spec.name)
             + W_PRIOR * (1.0 - pos / max(n - 1, 1)))
    hinted = spec.name == query.model_hint
    score += 10.0 if hinted else 0.0
    too_slow = query.max_latency_ms is not None and expected > query.max_latency_ms
    parts = ["requested by options.model"] if hinted else []
    est, seen = judged.estimate, ["sees the attachment"] if looks else []
    if est is None:
        parts += [f"quality {spec.quality:.2f}", f"cost {spec.cost:g}", *seen,
                  f"handles {query.needs}" if fit else f"best below {query.needs} ({spec.complexity})"]
    else:
        parts += [f"p(right) {est.p:.2f}" + (f"±{est.sd:.2f} ({est.cell}, {est.n:.0f} answers)" if est.sd else ""),
                  f"cost {judged.cost:.2f} of the dearest", *seen,
                  "within the margin of the best" if fit else "below the margin of the best" if judged.vouched
                  else "no outcomes learned: a fallback only"]
    parts += ["loaded" if loaded else f"cold (+{spec.load_ms / 1000:.0f}s load)", f"expected {expected:.0f} ms",
              f"serves {query.language}" if query.language in spec.languages else f"not tuned for {query.language}"]
    if too_slow:
        parts.append("over max_latency_ms")
    unvouched = not judged.vouched and not hinted
    return too_slow, unvouched, -score, pos, Candidate(spec.name, round(score, 4), expected, ", ".join(parts))


def _decided_by(registry: Registry, ranking: Ranking, query: Query, by_loaded: bool,
                weights: tuple[float, float, float], learnt: bool = False) -> str:
    """The signal that made the first candidate first, in words."""
    if not ranking.candidates:
        return ""
    best = registry.model(ranking.candidates[0].model)
    if best.name == query.model_hint:
        return "requested by options.model"
    others = [registry.model(c.model) for c in ranking.candidates[1:]]
    if any("does not list" in why for _, why in ranking.skipped):
        return f"language {query.language}: models that do not list it were passed over"
    elif not others:
        return "the only model that can serve now"
    elif by_loaded:
        return "loaded state: another model would lead, but it is cold and this one answers now"
    elif sees(best, query.attachments) and not all(sees(o, query.attachments) for o in others):
        return "media: it takes the attachment itself"
    elif learnt:
        return f"learned: prefer {query.prefer}, by each model's probability of a right answer and its cost"
    elif weights == PREFERENCES["quality"]:
        why = "complexity high" if query.complexity == "high" else \
            "tools or a structured answer: the strongest model" if query.needs == "high" else "prefer quality"
        return f"quality ({why})"
    elif weights == PREFERENCES["cost"]:
        return "cost (prefer cost)"
    return f"complexity {query.complexity}: the cheapest model that handles it"

