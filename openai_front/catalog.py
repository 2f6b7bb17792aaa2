"""GET /v1/models: `auto` and every model the router may pick, read from the registry."""
from __future__ import annotations

import time
from model_router.registry import Registry

from .protocol import AUTO, ModelCard, ModelList

OWNER = "triton-model-router"


def pickable(registry: Registry, profile: str) -> list[str]:
    """The profile's models that answer a use case, then its embedding models (POST /v1/embeddings): not the
    pinned classifier and router, not the step models (OCR, frames) that only run around another."""
    answering = [m.name for m in registry.managed(profile) if not m.pinned and m.use_cases]
    return answering + [m.name for m in registry.embedders(profile)]


def model_list(registry: Registry, profile: str, created: int | None = None) -> ModelList:
    created = int(time.time()) if created is None else created
    embedders = {m.name for m in registry.embedders(profile)}
    data = [ModelCard(id=AUTO, created=created, owned_by=OWNER, description="the router picks the model for each request")]
    data += [ModelCard(id=name, created=created, owned_by=OWNER, use_cases=list(registry.model(name).use_cases),
                       description="text embeddings (POST /v1/embeddings)" if name in embedders else None)
             for name in pickable(registry, profile)]
    return ModelList(data=data)
