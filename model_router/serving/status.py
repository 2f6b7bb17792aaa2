"""The router's deep health: what people and orchestrators ask when Triton's own /v2/health says
200 although a stub is dead. Per managed model: loaded, healthy, recovering, cooling down, memory;
and the response cache's state (also answered alone, with `clear`, to the admin: cache_admin)."""
from __future__ import annotations

import hmac
from collections import Counter
from typing import Any

from ..cache import ResponseCache
from ..errors import InputError

from .health import HealthTracker
from .loader import ModelLoader
from .recovery import Recovery


class Tally:
    """Loads and unloads (by reason: evicted, idle, ...) per model since the router started, for the report."""

    def __init__(self) -> None:
        self.loads: Counter[str] = Counter()
        self.unloads: dict[str, Counter[str]] = {}

    def loaded(self, model: str, seconds: float) -> None:
        self.loads[model] += 1

    def unloaded(self, model: str, reason: str) -> None:
        self.unloads.setdefault(model, Counter())[reason] += 1


def deep_health(loader: ModelLoader, recovery: Recovery, health: HealthTracker,
                cache: ResponseCache | None = None, tally: Tally | None = None) -> dict[str, Any]:
    """`ready` is true when every pinned model (the classifier) is loaded and not recovering (a cache
    that is down is reported, never a reason to be unready: requests are answered without it)."""
    models = loader.footprints()
    for name, row in models.items():
        if tally is not None:
            row["loads"], row["unloads"] = tally.loads[name], dict(tally.unloads.get(name, {}))
            row["evictions"] = sum(n for why, n in row["unloads"].items() if why != "idle")
        row["recovering"] = recovery.recovering(name)
        row["cooling_s"] = round(health.cooling(name), 1)
        row["healthy"] = row["status"] == "loaded" and not row["recovering"] and not row["cooling_s"]
    host, gpu = loader.used_mb()
    ready = all(row["healthy"] for row in models.values() if row["pinned"] and row["status"] != "unloaded") and \
        all(row["status"] == "loaded" for row in models.values() if row["pinned"])
    return {"ready": ready,
            "memory": {"budget_mb": loader.budget_mb, "used_mb": round(host, 1),
                       "gpu_budget_mb": loader.gpu_budget_mb, "gpu_used_mb": round(gpu, 1)},
            "models": models, "recoveries": recovery.report(), "cache": cache_state(cache)}


def cache_state(cache: ResponseCache | None) -> dict[str, Any]:
    """Backend, health, last error and bytes held (what `tmr health --deep` shows)."""
    if cache is None:
        return {"backend": "off", "healthy": True, "last_error": "", "bytes": 0}
    stats = cache.stats()
    return {k: stats[k] for k in ("backend", "url", "healthy", "last_error", "bytes", "hit_rate")}


def cache_admin(cache: ResponseCache | None, action: str, key: str | None, admin_key: str | None) -> dict[str, Any]:
    """`stats` or `clear` the cache; with a server admin key, only for a request that carries it."""
    if admin_key and (key is None or not hmac.compare_digest(key.encode(), admin_key.encode())):
        raise InputError("options.admin_key", "missing or not the server's admin key (cache_admin needs it)")
    if action == "clear":
        return {"cleared": cache.clear() if cache is not None else 0, **cache_state(cache)}
    return cache.stats() if cache is not None else cache_state(None)
