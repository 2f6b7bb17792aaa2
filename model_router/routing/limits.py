"""Which models can take a request's size, decided before any load: its max_tokens and its JSON
schemas against each text model's limits (registry: ModelSpec.limits, read from the model's own
config). A request that no model on offer can take is refused naming the client's field and the
largest limit on offer; one that some can take goes only to those. An engine's own refusal (a
prompt's tokens, counted after its chat template) is renamed to the field the client sent.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from ..contract.errors import Forbidden
from ..contract.generation import MESSAGES, PROMPT, SAMPLING, TOOLS
from ..contract.limits import ModelLimits
from ..contract.request import RouteOptions
from ..contract.router import RouterRequest
from ..errors import InputError
from ..registry import ModelSpec, Registry
from ..tools.constraint import structured_outputs

MAX_TOKENS = f"options.{SAMPLING}.max_tokens"
CLIENTS_OWN = f"options.{SAMPLING}.structured_outputs"  # a constraint the client wrote itself


@dataclass(frozen=True)
class Excess:
    """One limit a request goes over: the field at fault, the request's figure, the model's limit."""

    limit_name: str  # a ModelLimits field
    field: str
    value: int
    limit: int

    @property
    def label(self) -> str:
        """The field in words any client reads as its own (`max_tokens`, `tools[1]`)."""
        return self.field.removeprefix("options.").removeprefix(f"{SAMPLING}.")

    def problem(self, limit: str = "") -> str:
        """"<value> exceeds <limit>" (by default, this model's limit)."""
        unit = "" if self.limit_name == "max_output_tokens" else " bytes of JSON schema"
        return f"{self.value}{unit} exceeds {limit or f'the limit of {self.limit}'}"


def schema_sizes(opts: RouteOptions) -> list[tuple[str, int]]:
    """(field, bytes as JSON) of each schema the request gives a model: its tools', its response format's."""
    sizes = [(f"options.tools[{i}]", len(json.dumps(t.function.parameters)))
             for i, t in enumerate(opts.tools)] if opts.wants_tools else []
    fmt, own = opts.response_format, opts.sampling_parameters.structured_outputs
    if fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None:
        sizes.append(("options.response_format", len(json.dumps(fmt.json_schema.schema_))))
    elif not opts.constrained and own is not None and own.json_schema is not None:
        sizes.append((CLIENTS_OWN, len(json.dumps(own.json_schema))))
    return sizes


def _constraint_size(opts: RouteOptions) -> int:
    """Bytes of the JSON schema a model is told to enforce (tools.constraint), as its engine counts them."""
    constraint = structured_outputs(tuple(opts.tools), opts.tool_choice if opts.wants_tools else None,
                                    opts.response_format)
    return len(json.dumps(constraint.json_schema)) if constraint is not None and constraint.json_schema else 0


@dataclass(frozen=True)
class Demand:
    """What a request asks of a model's limits, measured once for every model on offer."""

    max_tokens: int
    sizes: tuple[tuple[str, int], ...]  # schema_sizes
    schema_bytes: int  # as the engine measures them: the client's schemas, or the grammar built from them
    tools: bool

    @classmethod
    def of(cls, opts: RouteOptions) -> Demand:
        sizes = tuple(schema_sizes(opts))
        # The engine measures the grammar it enforces: a forced call wraps the tools' schemas, and closes them.
        return cls(opts.sampling_parameters.max_tokens, sizes,
                   max(sum(size for _, size in sizes), _constraint_size(opts)), opts.wants_tools)


def excess(limits: ModelLimits, asked: RouteOptions | Demand) -> Excess | None:
    """The first of `limits` the request goes over (None: it fits)."""
    need = asked if isinstance(asked, Demand) else Demand.of(asked)
    if need.max_tokens > limits.max_output_tokens:
        return Excess("max_output_tokens", MAX_TOKENS, need.max_tokens, limits.max_output_tokens)
    cap = limits.max_schema_bytes
    if need.schema_bytes <= cap or not need.sizes:
        return None
    field, size = max(need.sizes, key=lambda fs: fs[1])
    if size <= cap:  # together, not one alone: the tools as a whole (or with the response format)
        field = "options.tools" if need.tools else field
    return Excess("max_schema_bytes", field, size if size > cap else need.schema_bytes, cap)


def over_limits(specs: list[ModelSpec], opts: RouteOptions, named: str | None = None) -> dict[str, str]:
    """Per text model among `specs` that cannot take the request, why. InputError when the model the
    request names cannot, or when none can (naming the largest limit on offer)."""
    texts, need = [s for s in specs if s.interface == "text-generation"], Demand.of(opts)
    over = {s.name: e for s in texts if (e := excess(s.limits, need)) is not None}
    if named in over:
        raise InputError(over[named].field, over[named].problem(f"the limit of model {named}, {over[named].limit}"))
    if texts and len(over) == len(texts):
        raise InputError(*_refusal(texts, over))
    return {name: f"{e.label}: {e.problem()}" for name, e in over.items()}


def _refusal(texts: list[ModelSpec], over: dict[str, Excess]) -> tuple[str, str]:
    """(field, problem) of a request that no model takes: over every model's limit of one kind, or
    over another limit of the model that takes the most of that kind."""
    first = next(iter(over.values()))
    best = max(texts, key=lambda s: getattr(s.limits, first.limit_name))
    largest = getattr(best.limits, first.limit_name)
    if first.value > largest:
        return first.field, first.problem(f"the largest limit on offer, {largest} (model {best.name})")
    own = over[best.name]
    return own.field, own.problem(f"the limit of model {best.name}, {own.limit}, the largest that takes "
                                  f"{first.label} {first.value}")


def on_offer(registry: Registry, profile: str, use_case: str, named: str | None,
             allowed: list[str] | None = None) -> list[ModelSpec]:
    """The use case's chain, and the model a request names where it serves the use case there (else the
    policy names the fault), in order; of them, those the client's key allows (`allowed`, None: all).
    Forbidden when the key allows none of the use case's models."""
    spec = registry.models.get(named or "")
    extra = [spec.name] if spec and use_case in spec.use_cases and profile in spec.profiles else []
    offered = [registry.model(m) for m in dict.fromkeys([*registry.chain(profile, use_case), *extra])]
    kept = [s for s in offered if allowed is None or s.name in allowed]
    if offered and not kept:
        raise Forbidden("options.model", f"no model this key may use serves use case {use_case!r}. Allowed: "
                                         f"{sorted(allowed or ())}; the use case's: {[s.name for s in offered]}")
    return kept


def another_may_take(engine_field: str, refused: InputError, spec: ModelSpec, request: RouterRequest) -> bool:
    """An engine refused the prompt as too long for its limit: a model with a longer one may take it,
    unless the request named this model."""
    return engine_field in (PROMPT, MESSAGES) and refused.limit is not None and spec.name != request.options.model


def client_field(engine_field: str, request: RouterRequest) -> str:
    """The field the client sent behind a field an engine's error names (the vLLM contract's names)."""
    if engine_field.startswith(f"{SAMPLING}.structured_outputs") and request.options.constrained:
        return "options.tools" if request.options.wants_tools else "options.response_format"  # the router's
    if engine_field.startswith((SAMPLING, TOOLS)):
        return f"options.{engine_field}"
    if engine_field in (PROMPT, MESSAGES):  # the prompt, after the chat template
        return "messages" if request.messages else "text"
    return engine_field
