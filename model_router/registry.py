"""The model registry (registry.yaml): every model, its costs and the fallback chains, validated."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .classifier import LANGUAGES, USE_CASES
from .errors import RegistryError

REGISTRY_FILE = Path(__file__).resolve().parent / "registry.yaml"
BACKENDS = ("python", "transformers", "vllm")
INTERFACES = ("text-generation", "tts", "stt", "ocr", "frames", "classifier", "router")
MEDIA = ("image", "video", "audio")
# Steps the router runs around the chosen model (model_router/pipeline.py), by role: the interface each needs.
STEP_INTERFACES = {"read_image": "ocr", "sample_video": "frames", "transcribe": "stt", "speak": "tts"}
PROFILES = ("cpu", "gpu")
_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    backend: str
    interface: str
    use_cases: tuple[str, ...]
    languages: tuple[str, ...]
    quality: float
    latency_ms: float
    load_ms: float
    memory_mb: float
    gpu_memory_mb: float
    profiles: tuple[str, ...]
    pinned: bool = False
    media: tuple[str, ...] = ()  # attachment kinds a text generator takes itself (the vLLM backend's `image`)

    @property
    def streams(self) -> bool:
        return self.interface == "text-generation"


@dataclass(frozen=True)
class Profile:
    name: str
    memory_budget_mb: float
    gpu_memory_budget_mb: float
    idle_unload_s: float
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    steps: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Registry:
    models: dict[str, ModelSpec]
    profiles: dict[str, Profile]

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise RegistryError(f"profile: {name!r} unknown. Available: {sorted(self.profiles)}")
        return self.profiles[name]

    def chain(self, profile: str, use_case: str) -> tuple[str, ...]:
        return self.profile(profile).chains.get(use_case, ())

    def step(self, profile: str, role: str) -> ModelSpec | None:
        name = self.profile(profile).steps.get(role)
        return self.models[name] if name else None

    def pinned(self, profile: str) -> list[str]:
        return [m.name for m in self.models.values() if m.pinned and profile in m.profiles]

    def model(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise RegistryError(f"model: {name!r} unknown. Available: {sorted(self.models)}")
        return self.models[name]


def _need(d: dict, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in d:
        raise RegistryError(f"{where}.{key}: required")
    value = d[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise RegistryError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _choices(values: list, allowed: tuple[str, ...], where: str) -> tuple[str, ...]:
    for v in values:
        if v not in allowed:
            raise RegistryError(f"{where}: {v!r} unknown. Available: {list(allowed)}")
    return tuple(values)


def _model(name: str, d: dict) -> ModelSpec:
    where = f"models.{name}"
    if not _NAME.match(name):
        raise RegistryError(f"{where}: name must match {_NAME.pattern}")
    num = (int, float)
    spec = ModelSpec(
        name=name,
        backend=_choices([_need(d, "backend", where, str)], BACKENDS, f"{where}.backend")[0],
        interface=_choices([_need(d, "interface", where, str)], INTERFACES, f"{where}.interface")[0],
        use_cases=_choices(_need(d, "use_cases", where, list), USE_CASES, f"{where}.use_cases"),
        languages=_choices(d.get("languages", list(LANGUAGES)), LANGUAGES, f"{where}.languages"),
        quality=float(_need(d, "quality", where, num)),
        latency_ms=float(_need(d, "latency_ms", where, num)),
        load_ms=float(_need(d, "load_ms", where, num)),
        memory_mb=float(_need(d, "memory_mb", where, num)),
        gpu_memory_mb=float(d.get("gpu_memory_mb", 0)),
        profiles=_choices(_need(d, "profile", where, list), PROFILES, f"{where}.profile"),
        pinned=bool(d.get("pinned", False)),
        media=_choices(d.get("media", []), MEDIA, f"{where}.media"),
    )
    if not 0.0 <= spec.quality <= 1.0:
        raise RegistryError(f"{where}.quality: {spec.quality} is out of range [0, 1]")
    for key in ("latency_ms", "load_ms", "memory_mb", "gpu_memory_mb"):
        if getattr(spec, key) < 0:
            raise RegistryError(f"{where}.{key}: {getattr(spec, key)} must be >= 0")
    return spec


def _steps(pname: str, raw: dict, models: dict[str, ModelSpec]) -> dict[str, str]:
    for role, name in raw.items():
        where = f"steps.{pname}.{role}"
        _choices([role], tuple(STEP_INTERFACES), f"steps.{pname}")
        if name not in models:
            raise RegistryError(f"{where}: model {name!r} unknown. Available: {sorted(models)}")
        spec = models[name]
        if pname not in spec.profiles:
            raise RegistryError(f"{where}: model {name!r} is not in profile {pname!r}")
        if spec.interface != STEP_INTERFACES[role]:
            raise RegistryError(f"{where}: model {name!r} has interface {spec.interface!r}; "
                                f"{role} needs {STEP_INTERFACES[role]!r}")
    return dict(raw)


def parse_registry(raw: dict) -> Registry:
    if not isinstance(raw, dict):
        raise RegistryError("registry: expected a mapping with 'models', 'profiles' and 'chains'")
    models = {name: _model(name, d or {}) for name, d in _need(raw, "models", "registry", dict).items()}
    profiles = {}
    chains_raw = raw.get("chains", {}) or {}
    for pname, p in _need(raw, "profiles", "registry", dict).items():
        _choices([pname], PROFILES, "profiles")
        chains = {}
        for uc, chain in (chains_raw.get(pname) or {}).items():
            where = f"chains.{pname}.{uc}"
            _choices([uc], USE_CASES, f"chains.{pname}")
            for m in chain:
                if m not in models:
                    raise RegistryError(f"{where}: model {m!r} unknown. Available: {sorted(models)}")
                if pname not in models[m].profiles:
                    raise RegistryError(f"{where}: model {m!r} is not in profile {pname!r} (its profile: {list(models[m].profiles)})")
                if uc not in models[m].use_cases:
                    raise RegistryError(f"{where}: model {m!r} does not serve {uc!r} (it serves {list(models[m].use_cases)})")
            if len(set(chain)) != len(chain):
                raise RegistryError(f"{where}: a model appears twice in {chain}")
            chains[uc] = tuple(chain)
        steps = _steps(pname, (raw.get("steps") or {}).get(pname) or {}, models)
        profiles[pname] = Profile(pname, float(_need(p, "memory_budget_mb", f"profiles.{pname}", (int, float))),
                                  float(p.get("gpu_memory_budget_mb", 0)), float(p.get("idle_unload_s", 600)), chains,
                                  steps)
    for section in ("chains", "steps"):
        for pname in raw.get(section) or {}:
            if pname not in profiles:
                raise RegistryError(f"{section}.{pname}: profile unknown. Available: {sorted(profiles)}")
    return Registry(models, profiles)


def load_registry(path: Path | str = REGISTRY_FILE) -> Registry:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RegistryError(f"registry {path}: {exc}") from None
    return parse_registry(raw)
