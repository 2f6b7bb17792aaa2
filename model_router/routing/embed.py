"""Vectors instead of an answer (options.embed): the profile's embedding model, loaded on demand like
any other model and called through its contract (contract.embedding). Nothing is classified, ranked,
cached or generated: the request names its texts, and the answer is their vectors and token counts.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

from ..contract.embedding import EMBED, EmbedOutput, EmbedRequest
from ..contract.errors import Forbidden
from ..contract.request import RouteOptions
from ..contract.router import RouterAnswer, RouterRequest, Usage
from ..errors import Cancelled, InputError, NotFound, ServingError, TargetError
from ..registry import EMBEDDING, ModelSpec, Registry
from ..serving.health import HealthTracker
from ..serving.loader import LoadError, ModelLoader
from .policy import LiveState
from .tenancy import check_model

USE_CASE = EMBEDDING  # what the decision and the metrics call this work
ENGINE_FIELD, CLIENT_FIELD = "text", f"options.{EMBED}.input"  # a text the model refused, as the client sent it


class Parts(Protocol):
    """What of the router an embedding request uses (routing.router.Router)."""

    registry: Registry
    profile: str
    loader: ModelLoader
    health: HealthTracker
    live: LiveState
    clock: Callable[[], float]
    invoke: Any  # routing.router.Invoke
    metrics: Any  # routing.router.Metrics
    on_target_error: Callable[[str, str], None]

    def _load_timeout(self, spec: ModelSpec, timeout_s: float) -> float: ...


def embedder(registry: Registry, profile: str, opts: RouteOptions) -> ModelSpec:
    """The model options.model names when it is one of the profile's embedding models, else the first of them
    that the client's key may use (Forbidden when it may use none, or names one it may not)."""
    check_model(opts)
    named, models = opts.model, registry.embedders(profile)
    names = [m.name for m in models]
    if named is not None and named not in names:
        raise NotFound("options.model", f"{named!r} is not an embedding model on profile {profile!r}. "
                                        f"Available: {names}")
    if not models:
        raise ServingError(f"no embedding model on profile {profile!r}")
    allowed = [m for m in models if opts.allowed_models is None or m.name in opts.allowed_models]
    if not allowed:
        raise Forbidden("options.model", f"no embedding model is allowed for this key. Allowed: "
                                         f"{sorted(opts.allowed_models or ())}; the profile's: {names}")
    return registry.model(named) if named else allowed[0]


def embed_texts(router: Parts, request: RouterRequest, cancelled: Callable[[], bool]) -> RouterAnswer:
    """The vectors of options.embed.input from the profile's embedding model (or options.model), with
    their token counts as usage and the decision. A text over the model's token limit is the client's
    error, named `options.embed.input[i]`."""
    started, opts = router.clock(), request.options
    spec = embedder(router.registry, router.profile, opts)
    asked = EmbedRequest(tuple(opts.embed.input))
    got: dict = {}
    try:
        with router.loader.acquire(spec.name, router._load_timeout(spec, opts.timeout_s), cancelled) as lease:
            for out in router.invoke(spec, asked.encode(), False, opts.timeout_s, list(asked.outputs),
                                     cancelled=cancelled, gone=lambda: router.live.recovering(spec.name)):
                got.update(out)
        router.health.success(spec.name)
    except InputError as exc:
        raise type(exc)(CLIENT_FIELD + exc.field.removeprefix(ENGINE_FIELD), str(exc).partition(": ")[2],
                        exc.limit) from None
    except Cancelled:
        router.metrics.cancelled(USE_CASE)
        raise
    except (LoadError, TargetError) as exc:
        if isinstance(exc, TargetError):
            router.loader.sync()  # it may have been unloaded by hand, or its stub died: recovery hears of it
            router.on_target_error(spec.name, str(exc))
        router.health.failure(spec.name, str(exc))
        raise ServingError(f"embedding model {spec.name!r} failed: {exc}") from exc
    vectors = EmbedOutput.decode(got)
    if len(vectors.tokens) != len(asked.texts):
        raise ServingError(f"{spec.name}: {len(vectors.tokens)} vectors for {len(asked.texts)} texts")
    router.metrics.decision(USE_CASE, spec.name)
    decision = {"model": spec.name, "use_case": USE_CASE, "tenant": opts.tenant,
                "load_ms": round(lease.load_s * 1000, 1),
                "reason": f"options.embed: {len(asked.texts)} text(s) embedded by {spec.name}"
                          + (" (options.model)" if opts.model else " (the profile's embedding model)"),
                "total_ms": round((router.clock() - started) * 1000, 2)}
    return RouterAnswer("", True, decision, usage=Usage(sum(vectors.tokens), 0), embeddings=vectors.vectors)
