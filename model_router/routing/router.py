"""The routing pipeline, one way: look up the cache -> classify -> decide -> for each candidate,
attempt -> respond -> keep the answer.

Triton-free: the classifier call and the target call are injected, so the router model's
adapter wires them to BLS and the unit tests to plain functions.
"""
from __future__ import annotations

import hmac
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Generator, Iterator, Protocol

import numpy as np

from ..contract.classifier import MODEL as CLASSIFIER, Classification
from ..errors import Cancelled, InputError, ServingError, TargetError, never
from ..registry import ModelSpec, Registry
from ..contract.request import RouteOptions
from ..contract.router import RouterAnswer, RouterRequest
from ..tools.parser import read_answer
from ..serving.health import HealthTracker
from ..serving.loader import LoadError, ModelLoader
from .cached import RouterCache, recorded
from .decision import RoutingDecision, effective_use_case
from .decision_log import DecisionLog
from .embed import embed_texts
from .learned import LearnedPolicy
from .limits import another_may_take, client_field, on_offer, over_limits
from ..vocabulary import USE_CASE_OF_MODALITY, USE_CASE_TRAITS, modality_of
from .pipeline import Pipeline
from .policy import Candidate, LiveState, Query, rank
from .targets import Prepared, target_of
from .tenancy import bound, prefer_of

CONFIDENCE_HEADS = ("use_case", "language", "complexity", "modality")


class Invoke(Protocol):
    """One call to a model: its responses' outputs, as they come; it stops (raising Cancelled) when
    `cancelled()` turns true, fails (TargetError) when `gone()` says the model's process died, and
    cancels the call when the caller stops reading."""

    def __call__(self, model: ModelSpec, inputs: dict[str, np.ndarray], stream: bool, timeout_s: float,
                 outputs: list[str], cancelled: Callable[[], bool] = never,
                 gone: Callable[[], str] = lambda: "") -> Iterator[dict[str, np.ndarray]]: ...


class Metrics:
    """What the router tells its metrics (triton.metrics.RouterMetrics); this base says nothing."""

    def decision(self, use_case: str, model: str) -> None: ...
    def fallback(self, use_case: str, model: str) -> None: ...
    def classifier_latency(self, seconds: float) -> None: ...
    def cancelled(self, use_case: str) -> None: ...


@dataclass
class _Plan:
    """The decision so far and the models to try, in order."""

    decision: RoutingDecision
    attempts: list[Candidate]
    tried: list[tuple[str, str]] = field(default_factory=list)
    cancelled: Callable[[], bool] = never
    forced: str = ""  # the model an admin's request may load whatever it evicts
    too_long: InputError | None = None  # an engine's refusal of the prompt's length, under the client's field

    def takes_prompt(self, spec: ModelSpec) -> bool:
        """After an engine refused the prompt as too long: only a model with a longer limit may take it."""
        return self.too_long is None or spec.limits.max_prompt_tokens > (self.too_long.limit or 0)


class _Failed(Exception):
    """This candidate could not serve; the next one may."""


class Router:
    def __init__(self, registry: Registry, profile: str, classify: Callable[[str, tuple[str, ...]], Classification],
                 invoke: Invoke, loader: ModelLoader, health: HealthTracker, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.perf_counter, recovering: Callable[[str], str] = lambda m: "",
                 on_target_error: Callable[[str, str], None] = lambda model, error: None,
                 admin_key: str | None = None, cache: RouterCache | None = None,
                 decisions: DecisionLog | None = None, learned: LearnedPolicy | None = None) -> None:
        """`recovering(model)` says why a model is out while its stub is reloaded; `on_target_error`
        hears of every failed call (the health watcher); `admin_key` lets requests force a switch;
        `cache` answers repeated questions (none: every request is routed); `decisions` logs what is
        served; `learned` is what outcomes taught the policy (none: the registry's judgement decides)."""
        self.registry, self.profile, self.metrics = registry, profile, metrics or Metrics()
        self.classify, self.invoke, self.loader, self.health = classify, invoke, loader, health
        self.clock, self.on_target_error, self.admin_key, self.learned = clock, on_target_error, admin_key, learned
        self.live = LiveState(is_loaded=loader.is_loaded, blocker=loader.blocker, cooling_s=health.cooling,
                              recent_failures=health.recent_failures, recovering=recovering)
        self.cache, self.decisions = cache or RouterCache(None, profile, lambda: ""), decisions or DecisionLog(None)

    def route(self, request: RouterRequest, cancelled: Callable[[], bool] = never) -> Iterator[RouterAnswer]:
        """Yield pieces of the answer (`final` False) while streaming, then the whole answer. Raises
        Cancelled as soon as `cancelled()` turns true: between pieces, while a model loads, before each
        step; the target's call is cancelled with it and every lease is given back."""
        if request.options.embed is not None:  # vectors: nothing to classify, rank, cache or generate
            yield embed_texts(self, request, cancelled)
            return
        started = self.clock()
        cached = self.cache.lookup(request)
        if cached.answer is not None:  # a repeated question: nothing is classified, loaded or generated
            stream = request.options.stream and not request.options.wants_tools
            replayed = self.cache.replay(cached, stream, round((self.clock() - started) * 1000, 2))
            yield from self.decisions.served(replayed, request.options)
            return
        plan = self._decide(request)
        plan.decision.cache, plan.cancelled = cached.why, cancelled
        steps = Pipeline(self.registry, self.profile, self._call_step, request.options.timeout_s, self.clock, cancelled)
        plan.decision.steps = steps.records
        try:
            for cand in plan.attempts:
                if not plan.takes_prompt(self.registry.model(cand.model)):
                    continue
                pieces: list[str] = []
                try:
                    answer = yield from recorded(self._attempt(self.registry.model(cand.model), request, plan,
                                                               steps), pieces)
                except _Failed:
                    continue
                answer = self._respond(plan.decision, cand, answer, started, request.options)
                self.decisions.decided(answer.decision, request.options)
                self.cache.keep(cached, answer, pieces, self._unhealthy)
                yield answer
                return
        except Cancelled:
            self.metrics.cancelled(plan.decision.use_case)
            raise
        if plan.too_long is not None:  # the client's: no model on offer takes a prompt that long
            raise plan.too_long
        raise ServingError(f"no model could serve use case {plan.decision.use_case!r}", plan.tried)

    # -- classify and decide ----------------------------------------------------------------------
    def _decide(self, request: RouterRequest) -> _Plan:
        opts = request.options
        t0 = self.clock()
        c, unavailable = self._classify(request)
        classifier_s = self.clock() - t0
        self.metrics.classifier_latency(classifier_s)
        use_case, reason = effective_use_case(c, opts.use_case, request.kinds, opts.wants_tools or opts.constrained)
        decision = RoutingDecision(**{**asdict(c), "use_case": use_case, "language": opts.language or c.language},
                                   reason=unavailable + reason, classifier_ms=round(classifier_s * 1000, 2))
        bound(decision, opts)  # the client's key: its models, use cases and prefer ceiling
        forced = (opts.model or "") if self._is_admin(opts.admin_key) else ""
        offered = on_offer(self.registry, self.profile, use_case, opts.model, opts.allowed_models)
        query = Query(use_case, decision.language, c.complexity, prefer_of(opts), opts.max_latency_ms, opts.model,
                      force=bool(forced), attachments=request.kinds, tools=opts.wants_tools, constrained=opts.constrained,
                      too_big=over_limits(offered, opts, opts.model), text=request.text, allowed=opts.allowed_models,
                      ceiling=opts.prefer_ceiling)
        t1 = self.clock()
        ranking = rank(self.registry, self.profile, query, self.live, self.learned)
        decision.select_ms = round((self.clock() - t1) * 1000, 3)
        decision.candidates = [{"model": k.model, "score": k.score, "why": k.why} for k in ranking.candidates]
        decision.skipped = [{"model": m, "why": w} for m, w in ranking.skipped]
        decision.decided_by = ranking.decided_by
        if not ranking.candidates:
            if not self.registry.chain(self.profile, use_case):
                raise ServingError(f"no model serves use case {use_case!r} on profile {self.profile!r}")
            raise ServingError(f"no model can serve use case {use_case!r} now", ranking.skipped)
        attempts = ranking.candidates if opts.allow_fallback else ranking.candidates[:1]
        if not opts.allow_fallback and opts.model and attempts[0].model != opts.model:
            raise ServingError(f"no model could serve use case {use_case!r} without fallback", ranking.skipped)
        return _Plan(decision, attempts, list(ranking.skipped), forced=forced)

    def _unhealthy(self, model: str) -> bool:
        """Recovering or cooling down: an answer that passed it over is a stand-in's."""
        return bool(self.live.recovering(model)) or self.live.cooling_s(model) > 0

    def _classify(self, request: RouterRequest) -> tuple[Classification, str]:
        """The classification, or, while the classifier cannot answer (its stub died and is being
        reloaded), one read from the attachments alone, said in the reason: a request is still served."""
        try:
            return self.classify(request.text, request.kinds), ""
        except InputError:
            raise
        except ServingError as exc:
            self.on_target_error(CLASSIFIER, str(exc))
            modality = modality_of(request.kinds)
            return (Classification(USE_CASE_OF_MODALITY[modality], "en", "medium", modality,
                                   dict.fromkeys(CONFIDENCE_HEADS, 0.0)),
                    f"classifier unavailable ({exc}): read from the attachments; ")

    def _is_admin(self, key: str | None) -> bool:
        if key is not None and not (self.admin_key and hmac.compare_digest(key.encode(), self.admin_key.encode())):
            raise InputError("options.admin_key", "does not match the server's admin key")
        return key is not None

    # -- attempt one candidate ----------------------------------------------------------------------
    def _attempt(self, spec: ModelSpec, request: RouterRequest, plan: _Plan,
                 steps: Pipeline) -> Generator[RouterAnswer, None, RouterAnswer]:
        """Steps -> ensure loaded -> infer -> after-steps. Raises _Failed when the next candidate should try."""
        decision, target = plan.decision, target_of(spec)
        # Text that may turn out to be a tool call is not streamed: the calls come whole, at the end.
        stream = request.options.stream and target.streams and not request.options.wants_tools
        prepared = self._prepare(spec, request, plan, steps) if target.interface == "text-generation" else None
        inputs, outputs = target.for_request(spec, request, decision.language, stream, prepared)  # bad input: before any load
        answer = RouterAnswer(prepared.preface if prepared else "", False)
        sent = False
        try:
            with self.loader.acquire(spec.name, self._load_timeout(spec, request.options.timeout_s),
                                     plan.cancelled, force=spec.name == plan.forced) as lease:
                decision.load_ms += round(lease.load_s * 1000, 1)
                if stream and answer.text:
                    sent = True
                    yield RouterAnswer(answer.text, False)
                for out in self.invoke(spec, inputs, stream, request.options.timeout_s, outputs,
                                       cancelled=plan.cancelled, gone=lambda: self.live.recovering(spec.name)):
                    if plan.cancelled():  # closing the call cancels it at the target
                        raise Cancelled("mid-answer")
                    got = target.decode(out)
                    answer = answer.add(got)
                    if got.text and stream:
                        sent = True
                        yield got
            self.health.success(spec.name)
        except (LoadError, TargetError) as exc:  # the client's errors (InputError) pass straight up
            self._failed(spec, exc, plan, sent)
        except InputError as exc:  # the engine's, named as the client sent them
            refused = type(exc)(client_field(exc.field, request), str(exc).partition(": ")[2], exc.limit)
            if not another_may_take(exc.field, refused, spec, request):
                raise refused from None
            plan.too_long = refused  # a prompt too long for this model: one with a longer limit may take it
            plan.decision.fallbacks.append({"model": spec.name, "error": str(refused)})
            raise _Failed from exc
        if prepared:
            decision.degraded = prepared.degraded
        if USE_CASE_TRAITS[decision.use_case].spoken and target.interface == "text-generation":
            answer = self._speak(answer, prepared, decision, steps)
        return answer

    def _prepare(self, spec: ModelSpec, request: RouterRequest, plan: _Plan, steps: Pipeline) -> Prepared:
        try:
            return steps.prepare(spec, request, plan.decision.use_case, plan.decision.language)
        except ServingError as exc:  # a step failed; another candidate may take the media itself
            plan.tried.append((spec.name, str(exc)))
            plan.decision.fallbacks.append({"model": spec.name, "error": str(exc)})
            raise _Failed from exc

    def _failed(self, spec: ModelSpec, exc: ServingError, plan: _Plan, sent: bool) -> None:
        if isinstance(exc, TargetError):
            self.loader.sync()  # it may have been unloaded by hand: see what Triton says
            self.on_target_error(spec.name, str(exc))  # or its stub may have died
        self.health.failure(spec.name, str(exc))
        plan.tried.append((spec.name, str(exc)))
        plan.decision.fallbacks.append({"model": spec.name, "error": str(exc)})
        self.metrics.fallback(plan.decision.use_case, spec.name)
        if sent:  # part of the answer is out: another model cannot take over mid-stream
            raise ServingError(f"model {spec.name!r} failed mid-stream", plan.tried) from exc
        raise _Failed from exc

    def _speak(self, answer: RouterAnswer, prepared: Prepared | None, decision: RoutingDecision,
               steps: Pipeline) -> RouterAnswer:
        """An avatar's reply, spoken, with its viseme timeline; the reply stands if speech fails."""
        reply = answer.text[len(prepared.preface) if prepared else 0:]
        try:
            speech = steps.speak(reply, decision.language)
            return replace(answer, audio=speech.audio, visemes=speech.visemes or None)
        except (ServingError, ValueError) as exc:  # InputError is a ValueError
            decision.degraded.append(f"no speech: {exc}")
            return answer

    def _respond(self, decision: RoutingDecision, cand: Candidate, answer: RouterAnswer, started: float,
                 opts: RouteOptions) -> RouterAnswer:
        preferred, decision.model = opts.model, cand.model
        decision.reason += f"; chose {cand.model} ({decision.decided_by}): {cand.why}" if decision.decided_by else \
            f"; chose {cand.model}: {cand.why}"
        passed_over = [s["why"] for s in decision.skipped if s["model"] == preferred]
        if preferred and preferred != cand.model and passed_over:
            decision.reason += f"; options.model {preferred} passed over: {passed_over[0]}"
        if decision.fallbacks:
            decision.reason += f" (after {len(decision.fallbacks)} fallback(s))"
        decision.total_ms = round((self.clock() - started) * 1000, 2)
        self.metrics.decision(decision.use_case, cand.model)
        got = read_answer(opts, answer.text, answer.finish_reason)
        return replace(answer, text=got.content, final=True, decision=asdict(decision), finish_reason=got.finish_reason,
                       tool_calls=got.calls)

    # -- calls ------------------------------------------------------------------------------------
    @staticmethod
    def _load_timeout(spec: ModelSpec, timeout_s: float) -> float:
        """How long to wait for a model to be loaded: its own load time counts too."""
        return max(timeout_s, spec.load_ms / 1000 * 3)

    def _call_step(self, spec: ModelSpec, inputs: dict[str, np.ndarray], outputs: list[str],
                   timeout_s: float, cancelled: Callable[[], bool] = never) -> dict[str, np.ndarray]:
        """One call to a step model (OCR, frames, speech): loaded on demand, leased while it runs."""
        try:
            with self.loader.acquire(spec.name, self._load_timeout(spec, timeout_s), cancelled):
                result: dict[str, np.ndarray] = {}
                for out in self.invoke(spec, inputs, False, timeout_s, outputs, cancelled=cancelled):
                    result.update(out)
            self.health.success(spec.name)
            return result
        except (LoadError, TargetError) as exc:
            self.health.failure(spec.name, str(exc))
            raise ServingError(f"step model {spec.name!r} failed: {exc}") from exc
