"""A client's key bounds what routing may do for it (RouteOptions: tenant, allowed_models, allowed_use_cases,
prefer_ceiling; the front sets them from the key). Where each bound is kept:

- a model the request names outside allowed_models: Forbidden naming `options.model`, listing the allowed
  ones (`check_model`; embeddings too, routing.embed);
- on `auto`, the policy ranks only the allowed models, the others skipped as "not allowed for this key"
  (policy.Query.allowed); a use case none of whose models the key may use is refused (limits.on_offer);
- a use case, set or classified, outside allowed_use_cases: Forbidden naming `options.use_case` (`bound`);
- a prefer above prefer_ceiling is lowered to it and the decision's reason says so; the policy caps the
  quality weights that high complexity brings too (policy.Query.ceiling).

allowed_models bounds the models that answer or embed; the steps a use case takes (OCR, video frames, an
avatar's speech) come with the use case, which allowed_use_cases bounds. Cached answers are kept apart per
namespace (RouteOptions.namespace: routing.cached).
"""
from __future__ import annotations

from ..contract.errors import Forbidden
from ..contract.request import RouteOptions
from ..contract.tenancy import capped
from .decision import RoutingDecision


def check_model(opts: RouteOptions) -> None:
    """Forbidden when the request names a model its key may not use."""
    if opts.model is not None and opts.allowed_models is not None and opts.model not in opts.allowed_models:
        raise Forbidden("options.model", f"{opts.model!r} is not allowed for this key. "
                                         f"Allowed: {sorted(opts.allowed_models)}")


def prefer_of(opts: RouteOptions) -> str:
    """The preference routing weighs: options.prefer, lowered to the key's prefer_ceiling."""
    return capped(opts.prefer, opts.prefer_ceiling)


def bound(decision: RoutingDecision, opts: RouteOptions) -> None:
    """The decision within its key's bounds: it names the tenant and says when prefer was lowered. Forbidden
    for a model or a use case (as decided: set, classified or implied by tools) the key may not use."""
    decision.tenant = opts.tenant
    check_model(opts)
    allowed = opts.allowed_use_cases
    if allowed is not None and decision.use_case not in allowed:
        raise Forbidden("options.use_case", f"use case {decision.use_case!r} is not allowed for this key "
                                            f"({decision.reason}). Allowed: {sorted(allowed)}")
    if prefer_of(opts) != opts.prefer:
        decision.reason += f"; options.prefer {opts.prefer} lowered to {prefer_of(opts)} (this key's prefer_ceiling)"
