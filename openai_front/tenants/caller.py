"""The tenant a request is made for, once its key is read (tenants.enforce), for the rest of that request:
the router's options that keep it within its key's bounds, and whom its answer is charged to."""
from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from model_router.contract.request import RouteOptions

from .keys import TenantKey


@dataclass(frozen=True)
class Caller:
    key_hash: str
    key: TenantKey

    def router_options(self) -> dict[str, Any]:
        """The key's bounds as the router's options (contract.request.RouteOptions): its name, its models,
        use cases, ceiling, and its cache's namespace (its name unless the operator gave it a shared one:
        its answers reach no other tenant otherwise)."""
        return RouteOptions(tenant=self.key.name, allowed_models=self.key.models, allowed_use_cases=self.key.use_cases,
                            prefer_ceiling=self.key.prefer, cache_namespace=self.key.cache_namespace).wire()


# Set by the authentication of each request (a request is one asyncio task: it does not leak to another).
CURRENT: ContextVar[Caller | None] = ContextVar("tmr_caller", default=None)


def current_options() -> dict[str, Any]:
    caller = CURRENT.get()
    return caller.router_options() if caller is not None else {}
