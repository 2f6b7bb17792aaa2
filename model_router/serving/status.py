"""The router's deep health: what people and orchestrators ask when Triton's own /v2/health says
200 although a stub is dead. Per managed model: loaded, healthy, recovering, cooling down, memory."""
from __future__ import annotations

from typing import Any

from .health import HealthTracker
from .loader import ModelLoader
from .recovery import Recovery


def deep_health(loader: ModelLoader, recovery: Recovery, health: HealthTracker) -> dict[str, Any]:
    """`ready` is true when every pinned model (the classifier) is loaded and not recovering."""
    models = loader.footprints()
    for name, row in models.items():
        row["recovering"] = recovery.recovering(name)
        row["cooling_s"] = round(health.cooling(name), 1)
        row["healthy"] = row["status"] == "loaded" and not row["recovering"] and not row["cooling_s"]
    host, gpu = loader.used_mb()
    ready = all(row["healthy"] for row in models.values() if row["pinned"] and row["status"] != "unloaded") and \
        all(row["status"] == "loaded" for row in models.values() if row["pinned"])
    return {"ready": ready,
            "memory": {"budget_mb": loader.budget_mb, "used_mb": round(host, 1),
                       "gpu_budget_mb": loader.gpu_budget_mb, "gpu_used_mb": round(gpu, 1)},
            "models": models, "recoveries": recovery.report()}
