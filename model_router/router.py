"""The routing pipeline, one way: classify -> select -> ensure loaded -> infer -> respond.

Triton-free: the classifier call and the target call are injected, so the model.py adapter
wires them to BLS and the unit tests to plain functions.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Protocol

import numpy as np

from .classifier import Classification
from .errors import InputError, ServingError
from .health import HealthTracker
from .loader import LoadError, ModelLoader
from .options import RouteRequest
from .pipeline import Pipeline, Prepared, image_input
from .policy import LiveState, rank
from .registry import ModelSpec, Registry
from .speech import speech_text
from .tensors import strings, texts

LOW_CONFIDENCE = 0.40  # below it, a text-only query goes to the general assistant


class TargetError(ServingError):
    """The target model failed or timed out."""


class Invoke(Protocol):
    def __call__(self, model: ModelSpec, inputs: dict[str, np.ndarray], stream: bool, timeout_s: float,
                 outputs: list[str]) -> Iterator[dict[str, np.ndarray]]: ...


class Metrics(Protocol):
    def decision(self, use_case: str, model: str) -> None: ...
    def fallback(self, use_case: str, model: str) -> None: ...
    def classifier_latency(self, seconds: float) -> None: ...


class NullMetrics:
    def decision(self, use_case: str, model: str) -> None: ...
    def fallback(self, use_case: str, model: str) -> None: ...
    def classifier_latency(self, seconds: float) -> None: ...


@dataclass
class RoutingDecision:
    use_case: str
    language: str
    complexity: str
    modality: str
    confidence: dict[str, float]
    use_case_scores: dict[str, float]
    model: str = ""
    reason: str = ""
    candidates: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    fallbacks: list[dict[str, str]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)
    load_ms: float = 0.0
    classifier_ms: float = 0.0
    select_ms: float = 0.0
    total_ms: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def target_io(spec: ModelSpec, request: RouteRequest, language: str, stream: bool,
              prepared: Prepared | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """A target's inputs and the outputs to ask for, by its interface."""
    if spec.interface == "tts":
        return {"text": strings(speech_text(request.text)), "language": strings(language)}, ["audio", "visemes"]
    if spec.interface == "stt":
        if "audio" not in request.attachments:
            raise InputError("audio", "speech to text needs an audio attachment")
        # The query's language says how the user writes, not what the recording speaks: only an
        # explicit options.language is passed as a hint.
        return {"audio": strings(request.attachments["audio"]),
                "language": strings(request.options.language or "")}, ["text_output"]
    # The vLLM backend's contract, which every text generator here shares.
    inputs = {
        "text_input": strings(prepared.prompt if prepared else request.text),
        "stream": np.array([stream], dtype=bool),
        "exclude_input_in_output": np.array([True], dtype=bool),
        "sampling_parameters": strings(json.dumps(request.options.sampling_parameters)),
    }
    if prepared and prepared.images:
        inputs["image"] = image_input(prepared.images)
    return inputs, ["text_output"]


class Router:
    def __init__(self, registry: Registry, profile: str, classify: Callable[[str, tuple[str, ...]], Classification],
                 invoke: Invoke, loader: ModelLoader, health: HealthTracker, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.registry, self.profile = registry, profile
        self.classify, self.invoke, self.loader, self.health = classify, invoke, loader, health
        self.metrics = metrics or NullMetrics()
        self.clock = clock
        self.live = LiveState(is_loaded=loader.is_loaded, fits=loader.fits, cooling_s=health.cooling,
                              recent_failures=health.recent_failures)

    def route(self, request: RouteRequest) -> Iterator[tuple[str, Any]]:
        """Yield ("text", piece) while streaming, then ("done", RoutingDecision, full_text, extras).

        extras holds "audio" (WAV bytes) and "visemes" (the lip-sync timeline) when speech was made.
        """
        t0 = self.clock()
        opts = request.options
        c = self.classify(request.text, request.kinds)
        classifier_s = self.clock() - t0
        self.metrics.classifier_latency(classifier_s)
        use_case, reason = c.use_case, f"classified {c.use_case} ({c.confidence['use_case']:.2f})"
        if opts.use_case:
            use_case, reason = opts.use_case, f"use case set by options.use_case (classifier said {c.use_case})"
        elif c.confidence["use_case"] < LOW_CONFIDENCE and not request.kinds and use_case != "agent":
            use_case, reason = "agent", f"low confidence ({c.confidence['use_case']:.2f}) on {c.use_case}: general assistant"
        language = opts.language or c.language
        decision = RoutingDecision(use_case, language, c.complexity, c.modality, c.confidence, c.use_case_scores,
                                   reason=reason, classifier_ms=round(classifier_s * 1000, 2))
        t1 = self.clock()
        ranking = rank(self.registry, self.profile, use_case, language, self.live, opts.max_latency_ms, opts.model)
        decision.select_ms = round((self.clock() - t1) * 1000, 3)
        decision.candidates = [{"model": k.model, "score": k.score, "why": k.why} for k in ranking.candidates]
        decision.skipped = [{"model": m, "why": w} for m, w in ranking.skipped]
        if not ranking.candidates:
            if not self.registry.chain(self.profile, use_case):
                raise ServingError(f"no model serves use case {use_case!r} on profile {self.profile!r}")
            raise ServingError(f"no model can serve use case {use_case!r} now", ranking.skipped)
        tried: list[tuple[str, str]] = list(ranking.skipped)
        attempts = ranking.candidates if opts.allow_fallback else ranking.candidates[:1]
        if not opts.allow_fallback and opts.model and attempts[0].model != opts.model:
            raise ServingError(f"no model could serve use case {use_case!r} without fallback", tried)
        steps = Pipeline(self.registry, self.profile, self._call_step, opts.timeout_s, self.clock)
        decision.steps = steps.records
        for cand in attempts:
            spec = self.registry.model(cand.model)
            sent = False
            stream = opts.stream and spec.streams
            prepared: Prepared | None = None
            if spec.interface == "text-generation":
                try:
                    prepared = steps.prepare(spec, request, use_case, language)
                except ServingError as exc:  # a step failed; another candidate may take the media itself
                    tried.append((spec.name, str(exc)))
                    decision.fallbacks.append({"model": spec.name, "error": str(exc)})
                    continue
            inputs, outputs = target_io(spec, request, language, stream, prepared)  # bad input: before any load
            extras: dict[str, Any] = {}
            try:
                with self.loader.acquire(spec.name, timeout=max(opts.timeout_s, spec.load_ms / 1000 * 3)) as lease:
                    decision.load_ms += round(lease.load_s * 1000, 1)
                    pieces: list[str] = [prepared.preface] if prepared and prepared.preface else []
                    if stream and pieces:
                        sent = True
                        yield "text", pieces[0]
                    for out in self.invoke(spec, inputs, stream, opts.timeout_s, outputs):
                        if "audio" in out:
                            extras["audio"] = out["audio"].reshape(-1)[0]
                        visemes = json.loads("".join(texts(out.get("visemes"))) or "[]")
                        if visemes:  # "[]" from a TTS model without phoneme timing
                            extras["visemes"] = visemes
                        piece = "".join(texts(out.get("text_output")))
                        if piece:
                            pieces.append(piece)
                            if stream:
                                sent = True
                                yield "text", piece
                self.health.success(spec.name)
            except (LoadError, TargetError) as exc:  # the client's errors (InputError) pass straight up
                if isinstance(exc, TargetError):
                    self.loader.sync()  # it may have been unloaded by hand: see what Triton says
                self.health.failure(spec.name, str(exc))
                tried.append((spec.name, str(exc)))
                decision.fallbacks.append({"model": spec.name, "error": str(exc)})
                self.metrics.fallback(use_case, spec.name)
                if sent:  # part of the answer is out: another model cannot take over mid-stream
                    raise ServingError(f"model {spec.name!r} failed mid-stream", tried) from exc
                continue
            if prepared:
                decision.degraded = prepared.degraded
            if use_case == "avatar" and spec.interface == "text-generation":
                reply = "".join(pieces)[len(prepared.preface) if prepared else 0:]
                try:
                    extras.update(steps.speak(reply, language))
                except (ServingError, InputError) as exc:  # the reply stands; say what is missing
                    decision.degraded.append(f"no speech: {exc}")
            decision.model = spec.name
            decision.reason += f"; chose {spec.name}: {cand.why}"
            if decision.fallbacks:
                decision.reason += f" (after {len(decision.fallbacks)} fallback(s))"
            decision.total_ms = round((self.clock() - t0) * 1000, 2)
            self.metrics.decision(use_case, spec.name)
            yield "done", decision, "".join(pieces), extras
            return
        raise ServingError(f"no model could serve use case {use_case!r}", tried)

    def _call_step(self, spec: ModelSpec, inputs: dict[str, np.ndarray], outputs: list[str],
                   timeout_s: float) -> dict[str, np.ndarray]:
        """One call to a step model (OCR, frames, speech): loaded on demand, leased while it runs."""
        try:
            with self.loader.acquire(spec.name, timeout=max(timeout_s, spec.load_ms / 1000 * 3)):
                result: dict[str, np.ndarray] = {}
                for out in self.invoke(spec, inputs, False, timeout_s, outputs):
                    result.update(out)
            self.health.success(spec.name)
            return result
        except (LoadError, TargetError) as exc:
            self.health.failure(spec.name, str(exc))
            raise ServingError(f"step model {spec.name!r} failed: {exc}") from exc
