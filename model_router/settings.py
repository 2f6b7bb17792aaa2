"""The router's settings, read once into one typed object; each default is spelled here only.

Environment `TMR_<NAME>` wins over the router's config.pbtxt parameter `<name>`, which wins over the
registry's profile (budgets, idle unload), which wins over the default below.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .cache import CacheSettingError, parse_cache_url
from .cache.cache import DEFAULT_MAX_BYTES, DEFAULT_TTL_S
from .engine_config import limits_in
from .errors import RegistryError, describe
from .registry import REGISTRY_FILE, ProfileSpec, Registry, load_registry
from .routing.learned import ARTIFACT as LEARNED_ARTIFACT, Embedder, LearnedPolicy


class RouterSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    profile: str = "cpu"
    registry: Path = REGISTRY_FILE
    workers: int = Field(16, ge=1, le=256)           # requests routed at once
    max_queued: int = Field(32, ge=0)                 # and waiting for a worker; beyond: overloaded
    max_wait_s: float = Field(60.0, gt=0)
    max_text_chars: int = Field(8000, ge=1)
    memory_budget_mb: float | None = Field(None, ge=0)      # None: the profile's
    gpu_memory_budget_mb: float | None = Field(None, ge=0)
    idle_unload_s: float | None = Field(None, ge=0)
    min_residency_s: float = Field(60.0, ge=0)
    max_loads: int = Field(6, ge=1)
    load_window_s: float = Field(600.0, ge=0)
    recovery_backoff_s: tuple[float, ...] = (0.0, 30.0, 120.0, 600.0)
    cooldown_s: float = Field(30.0, ge=0)
    failure_threshold: int = Field(2, ge=1)
    admin_key: str | None = None
    control_url: str = "127.0.0.1:8000"
    # The response cache: memory (in-process LRU), off, or redis://HOST:PORT/DB shared by every replica.
    cache_url: str = "memory"
    cache_max_mb: float = Field(DEFAULT_MAX_BYTES / 2**20, gt=0)  # the in-process cache's bound
    cache_ttl_s: float = Field(DEFAULT_TTL_S, gt=0)
    cache_mode: Literal["off", "exact", "semantic"] = "exact"  # when a request's options.cache does not say
    # The other model repositories Triton serves (its --model-repository beside the router's own): where
    # the models' configs, and so their limits, are read (comma-separated in TMR_MODEL_REPOSITORIES).
    model_repositories: tuple[Path, ...] = ()
    # Where each answer's decision and each client's score of it go (routing.decision_log): a JSONL file's
    # path, redis://HOST:PORT/DB (shared by every replica), or off.
    decision_log: str = "off"
    # What routing learned from outcomes (routing.learned): "shipped" (the repository's artifact, when
    # there is one), an artifact's path, or off (the registry's hand-set quality and cost decide).
    learned_policy: str = "shipped"

    @field_validator("cache_url")
    @classmethod
    def _cache_url(cls, value: str) -> str:
        try:
            parse_cache_url(value)
        except CacheSettingError as exc:  # read() names the setting (and its variable) once
            raise ValueError(str(exc).partition(": ")[2]) from None
        return value

    @field_validator("decision_log")
    @classmethod
    def _decision_log(cls, value: str) -> str:
        text, allowed = value.strip(), "Allowed: off, a file's path, or redis://HOST:PORT/DB"
        if text.lower() in ("", "off"):
            return "off"
        if urlsplit(text).scheme in ("redis", "rediss"):
            try:
                parse_cache_url(text)  # the same Redis URLs as the cache's
            except CacheSettingError as exc:
                raise ValueError(str(exc).partition(": ")[2].partition(". Allowed")[0] + f". {allowed}") from None
        elif "://" in text:
            raise ValueError(f"{text!r} is neither a file's path nor a Redis URL. {allowed}")
        return text

    @field_validator("recovery_backoff_s", "model_repositories", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        return tuple(x.strip() for x in value.split(",") if x.strip()) if isinstance(value, str) else value

    @classmethod
    def read(cls, config: dict[str, Any], environ: dict[str, str] | None = None) -> RouterSettings:
        """From a model config's parameters and the environment (TMR_<NAME> wins)."""
        environ = os.environ if environ is None else environ
        params = {k: v.get("string_value") for k, v in config.get("parameters", {}).items()}
        values = {name: environ.get(f"TMR_{name.upper()}", params.get(name)) for name in cls.model_fields}
        try:
            return cls.model_validate({k: v for k, v in values.items() if v not in (None, "")})
        except ValidationError as exc:
            path, problem = describe(exc, cls, "")
            name = path.lstrip(".").split(".")[0]
            raise RegistryError(f"router setting {name} (TMR_{name.upper()} or parameter {name!r}): {problem}") from None

    def learned(self, embedder: Embedder | None = None) -> LearnedPolicy | None:
        """The learned routing policy this setting names (None: off, or "shipped" with none shipped)."""
        path = {"off": None, "shipped": LEARNED_ARTIFACT if LEARNED_ARTIFACT.is_file() else None}.get(
            self.learned_policy, Path(self.learned_policy))
        try:
            return LearnedPolicy.load(path, embedder)
        except (OSError, ValueError, TypeError) as exc:
            raise RegistryError(f"router setting learned_policy (TMR_LEARNED_POLICY): {path}: {exc} "
                                "(off, shipped, or an artifact written by scripts/eval_routing_value.py)") from None

    def load_registry(self, repositories: tuple[Path, ...] = ()) -> tuple[Registry, ProfileSpec, list[str]]:
        """The registry, each text generator's limits read from its config in the first of `repositories`
        that holds it; and the text generators no repository holds (they keep the default limits)."""
        registry = load_registry(self.registry)
        names = [m.name for m in registry.managed(self.profile) if m.interface == "text-generation"]
        found = limits_in(repositories, names)
        return registry.with_limits(found), registry.profile(self.profile), [n for n in names if n not in found]
