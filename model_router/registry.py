"""The model registry (registry.yaml): every model, its costs and the fallback chains, validated."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool, ValidationError

from .contract.limits import ModelLimits
from .errors import RegistryError, describe
from .vocabulary import LANGUAGES, Attachment, Complexity, Language, ProfileName, UseCase

REGISTRY_FILE = Path(__file__).resolve().parent / "registry.yaml"
Interface = Literal["text-generation", "tts", "stt", "ocr", "frames", "classifier", "router", "metrics", "embedding"]
EMBEDDING = "embedding"  # the interface of a model that turns texts into vectors (contract.embedding)
StepRole = Literal["read_image", "sample_video", "transcribe", "speak"]
# Steps the router runs around the chosen model (routing/pipeline.py), by role: the interface each needs.
STEP_INTERFACES: dict[str, str] = {"read_image": "ocr", "sample_video": "frames", "transcribe": "stt", "speak": "tts"}
_NAME = r"^[A-Za-z0-9_\-]+$"
# Backends that render tools with their own chat template, given the `tools` input (contract.generation).
TAKES_TOOLS = frozenset({"llamacpp"})
# Numbers must be numbers ("lots" of memory is an error, not a string to coerce).
Number = Annotated[float, Strict()]


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    backend: Literal["python", "transformers", "llamacpp", "vllm"]
    interface: Interface
    use_cases: tuple[UseCase, ...]
    languages: tuple[Language, ...] = LANGUAGES  # what it serves well
    quality: Number = Field(ge=0.0, le=1.0)
    # Relative cost of an output token (what the policy saves when a cheaper model suffices).
    cost: Number = Field(1.0, gt=0)
    # The highest complexity the model handles well (vocabulary.COMPLEXITIES).
    complexity: Complexity = "high"
    latency_ms: Number = Field(ge=0)
    load_ms: Number = Field(ge=0)
    memory_mb: Number = Field(ge=0)
    gpu_memory_mb: Number = Field(0.0, ge=0)
    profiles: tuple[ProfileName, ...] = Field(alias="profile")
    pinned: StrictBool = False
    # Attachment kinds a text generator takes itself (the vLLM backend's `image`).
    media: tuple[Attachment, ...] = ()
    # A vLLM-backend model takes a raw prompt: the router renders conversations with this tokenizer's
    # chat template (a Hugging Face id found in the local cache, or a folder). Without one, the model
    # gets the turns as `messages` and its backend applies its own template.
    tokenizer: str = ""
    # What stands for each image in the prompt, where a model needs one per image (Qwen2-VL's family).
    image_placeholder: str = ""
    # Agents: calls functions (tools), and its engine enforces an output grammar (structured_output);
    # tool_prompt: its chat template renders tools itself (template: through `tokenizer`, or, without
    # one, the backend's own template given the `tools` input), or the router writes them in Hermes'
    # <tool_call> format into the system turn (hermes).
    tools: StrictBool = False
    structured_output: StrictBool = False
    tool_prompt: Literal["template", "hermes"] = "hermes"
    # The same weights as another model, in another number format (its answers are that model's; the
    # routing evaluation asks it only when named).
    copy_of: str = ""
    # A text generator's limits: its engine's own, read from its config in the model repository
    # (Registry.with_limits, engine_config), never written here.
    limits: ModelLimits = Field(default_factory=ModelLimits, exclude=True)

    @property
    def cancels_by_id(self) -> bool:
        """Our backends (llamacpp shares transformers' request handling) stop a request named in a
        cancellation (parameter tmr_cancel), where Triton's BLS iterator cannot cancel (24.10)."""
        return self.backend in ("transformers", "llamacpp")


class ProfileSpec(BaseModel):
    """A deployment: its budgets, and per use case the chain of models to try, in order."""

    model_config = ConfigDict(extra="forbid")

    name: str
    memory_budget_mb: Number = Field(ge=0)
    gpu_memory_budget_mb: Number = Field(0.0, ge=0)
    idle_unload_s: Number = Field(600.0, ge=0)
    chains: dict[UseCase, tuple[str, ...]] = Field(default_factory=dict)
    steps: dict[StepRole, str] = Field(default_factory=dict)


class Registry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelSpec]
    profiles: dict[ProfileName, ProfileSpec]

    def profile(self, name: str) -> ProfileSpec:
        if name not in self.profiles:
            raise RegistryError(f"profile: {name!r} unknown. Available: {sorted(self.profiles)}")
        return self.profiles[name]

    def chain(self, profile: str, use_case: str) -> tuple[str, ...]:
        return self.profile(profile).chains.get(use_case, ())

    def step(self, profile: str, role: str) -> ModelSpec | None:
        name = self.profile(profile).steps.get(role)
        return self.models[name] if name else None

    def model(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise RegistryError(f"model: {name!r} unknown. Available: {sorted(self.models)}")
        return self.models[name]

    def with_limits(self, limits: dict[str, ModelLimits]) -> Registry:
        """The registry with these models' limits (read from their engines' configs)."""
        models = {name: spec.model_copy(update={"limits": limits[name]}) if name in limits else spec
                  for name, spec in self.models.items()}
        return self.model_copy(update={"models": models})

    def managed(self, profile: str) -> list[ModelSpec]:
        """The models of a profile, which its loader may load and unload."""
        return [m for m in self.models.values() if profile in m.profiles]

    def embedders(self, profile: str) -> list[ModelSpec]:
        """The profile's embedding models (options.embed, POST /v1/embeddings), in registry order."""
        return [m for m in self.managed(profile) if m.interface == EMBEDDING]


def _validated(cls: type[BaseModel], data: Any, where: str) -> Any:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        path, problem = describe(exc, cls, where)
        # A profile's chains and steps are their own sections of the file: name them so.
        path = re.sub(r"^profiles\.(\w+)\.(chains|steps)", r"\2.\1", path)
        raise RegistryError(f"{path}: {problem}") from None


def _check_chain(registry: Registry, pname: str, use_case: str, chain: tuple[str, ...]) -> None:
    where = f"chains.{pname}.{use_case}"
    for m in chain:
        if m not in registry.models:
            raise RegistryError(f"{where}: model {m!r} unknown. Available: {sorted(registry.models)}")
        spec = registry.models[m]
        if pname not in spec.profiles:
            raise RegistryError(f"{where}: model {m!r} is not in profile {pname!r} (its profile: {list(spec.profiles)})")
        if use_case not in spec.use_cases:
            raise RegistryError(f"{where}: model {m!r} does not serve {use_case!r} (it serves {list(spec.use_cases)})")
    if len(set(chain)) != len(chain):
        raise RegistryError(f"{where}: a model appears twice in {list(chain)}")


def _check_prompt(spec: ModelSpec) -> None:
    """A text generator's prompt is always rendered by a chat template: the router's (vLLM) or its backend's."""
    where = f"models.{spec.name}"
    if spec.interface != "text-generation":
        return
    if spec.backend == "vllm" and not spec.tokenizer:
        raise RegistryError(f"{where}.tokenizer: required for a vLLM-backend text generator (the vLLM backend "
                            "takes raw prompts: the router renders them with this tokenizer's chat template)")
    if spec.backend != "vllm" and spec.tokenizer:
        raise RegistryError(f"{where}.tokenizer: only for vLLM-backend models; backend {spec.backend!r} applies "
                            "its own chat template, so a prompt the router rendered would be templated twice")
    if spec.tool_prompt == "template" and not spec.tokenizer and spec.backend not in TAKES_TOOLS:
        raise RegistryError(f"{where}.tool_prompt: 'template' needs a tokenizer, or a backend whose template takes "
                            f"the `tools` input ({sorted(TAKES_TOOLS)}); backend {spec.backend!r} takes none")


def _check_embedder(spec: ModelSpec) -> None:
    """An embedding model answers options.embed alone: no use case's chain may pick it to answer a query."""
    if spec.interface == EMBEDDING and spec.use_cases:
        raise RegistryError(f"models.{spec.name}.use_cases: an embedding model serves none (it answers "
                            f"options.embed), got {list(spec.use_cases)}")


def _check_step(registry: Registry, pname: str, role: str, name: str) -> None:
    where = f"steps.{pname}.{role}"
    if name not in registry.models:
        raise RegistryError(f"{where}: model {name!r} unknown. Available: {sorted(registry.models)}")
    spec = registry.models[name]
    if pname not in spec.profiles:
        raise RegistryError(f"{where}: model {name!r} is not in profile {pname!r}")
    if spec.interface != STEP_INTERFACES[role]:
        raise RegistryError(f"{where}: model {name!r} has interface {spec.interface!r}; "
                            f"{role} needs {STEP_INTERFACES[role]!r}")


def parse_registry(raw: Any) -> Registry:
    """The registry from YAML's mapping: `profiles`, `models`, and per profile `chains` and `steps`."""
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), dict) or not isinstance(raw.get("profiles"), dict):
        raise RegistryError("registry: expected a mapping with 'models', 'profiles' and 'chains'")
    unknown = set(raw) - {"models", "profiles", "chains", "steps"}
    if unknown:
        raise RegistryError(f"registry.{sorted(unknown)[0]}: unknown section. Available: ['chains', 'models', 'profiles', 'steps']")
    for name, d in raw["models"].items():
        if isinstance(d, dict) and "limits" in d:
            raise RegistryError(f"models.{name}.limits: read from the model's own config (config.pbtxt "
                                "parameters or the vLLM engine's model.json), not written here")
    models = {name: _validated(ModelSpec, {**(d or {}), "name": name}, f"models.{name}")
              for name, d in raw["models"].items()}
    for section in ("chains", "steps"):
        for pname in raw.get(section) or {}:
            if pname not in raw["profiles"]:
                raise RegistryError(f"{section}.{pname}: profile unknown. Available: {sorted(raw['profiles'])}")
    profiles = {pname: _validated(ProfileSpec, {**(p or {}), "name": pname,
                                             "chains": (raw.get("chains") or {}).get(pname) or {},
                                             "steps": (raw.get("steps") or {}).get(pname) or {}}, f"profiles.{pname}")
                for pname, p in raw["profiles"].items()}
    registry = _validated(Registry, {"models": models, "profiles": profiles}, "registry")
    for spec in registry.models.values():
        _check_prompt(spec)
        _check_embedder(spec)
        if spec.copy_of and spec.copy_of not in registry.models:
            raise RegistryError(f"models.{spec.name}.copy_of: {spec.copy_of!r} unknown")
    for pname, profile in registry.profiles.items():
        for use_case, chain in profile.chains.items():
            _check_chain(registry, pname, use_case, chain)
        for role, name in profile.steps.items():
            _check_step(registry, pname, role, name)
    return registry


def load_registry(path: Path | str = REGISTRY_FILE) -> Registry:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RegistryError(f"registry {path}: {exc}") from None
    return parse_registry(raw)
