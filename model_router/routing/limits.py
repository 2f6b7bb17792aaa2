"""Which models can take a request's size, decided before any load: its max_tokens and its JSON
schemas against each text model's limits (registry: ModelSpec.limits, read from the model's own
config). A request that no model on offer can take is refused naming the client's field and the
largest limit on offer; one that some can take goes only to those. An engine's own refusal (a
prompt's tokens, counted after its chat template) is renamed to the field the client sent.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from ..contract.generation import MESSAGES, PROMPT, SAMPLING, TOOLS
from ..contract.limits import ModelLimits
from ..contract.request import RouteOptions
from ..contract.router import RouterRequest
from ..errors import InputError
from ..registry import ModelSpec
from ..tools.constraint import structured_outputs

MAX_TOKENS = "options.sampling_parameters.max_tokens"


@dataclass(frozen=True)
class Excess:
    """One limit a request goes over: the field at fault, the request's figure, the model's limit."""

    limit_name: str  # a ModelLimits field
    field: str
    value: int
    limit: int

    def problem(self, limit: str = "") -> str:
        """"<value> exceeds <limit>" (by default, this model's limit)."""
        unit = "" if self.limit_name == "max_output_tokens" else " bytes of JSON schema"
        return f"{self.value}{unit} exceeds {limit or f'the limit of {self.limit}'}"


def schema_sizes(opts: RouteOptions) -> list[tuple[str, int]]:
    """(field, bytes as JSON) of each schema the request gives a model: its tools', its response format's."""
    sizes = [(f"options.tools[{i}]", len(json.dumps(t.function.parameters)))
             for i, t in enumerate(opts.tools)] if opts.wants_tools else []
    fmt = opts.response_format
    if fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None:
        sizes.append(("options.response_format", len(json.dumps(fmt.json_schema.schema_))))
    return sizes


def _constraint_size(opts: RouteOptions) -> int:
    """Bytes of the JSON schema a model is told to enforce (tools.constraint), as its engine counts them."""
    constraint = structured_outputs(tuple(opts.tools), opts.tool_choice if opts.wants_tools else None,
                                    opts.response_format)
    return len(json.dumps(constraint.json_schema)) if constraint is not None and constraint.json_schema else 0


def excess(limits: ModelLimits, opts: RouteOptions) -> Excess | None:
    """The first of `limits` the request goes over (None: it fits)."""
    max_tokens = opts.sampling_parameters.max_tokens
    if max_tokens > limits.max_output_tokens:
        return Excess("max_output_tokens", MAX_TOKENS, max_tokens, limits.max_output_tokens)
    sizes = schema_sizes(opts)
    # The engine measures the grammar it enforces: a forced call wraps the tools' schemas, and closes them.
    total, cap = max(sum(size for _, size in sizes), _constraint_size(opts)), limits.max_schema_bytes
    if total <= cap:
        return None
    field, size = max(sizes, key=lambda fs: fs[1])
    if size <= cap:  # together, not one alone: the tools as a whole (or with the response format)
        field = "options.tools" if opts.wants_tools else field
    return Excess("max_schema_bytes", field, size if size > cap else total, cap)


def over_limits(specs: list[ModelSpec], opts: RouteOptions, named: str | None = None) -> dict[str, str]:
    """Per text model among `specs` that cannot take the request, why. InputError when the model the
    request names cannot, or when none can (naming the largest limit on offer)."""
    texts = [s for s in specs if s.interface == "text-generation"]
    over = {s.name: e for s in texts if (e := excess(s.limits, opts)) is not None}
    if named in over:
        raise InputError(over[named].field, over[named].problem(f"the limit of model {named}, {over[named].limit}"))
    if texts and len(over) == len(texts):
        raise InputError(*_refusal(texts, over))
    return {name: f"{e.field.removeprefix('options.')}: {e.problem()}" for name, e in over.items()}


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
                                  f"{first.field.removeprefix('options.')} {first.value}")


def client_field(engine_field: str, request: RouterRequest) -> str:
    """The field the client sent behind a field an engine's error names (the vLLM contract's names)."""
    if engine_field.startswith(f"{SAMPLING}.structured_outputs"):
        return "options.tools" if request.options.wants_tools else "options.response_format"
    if engine_field.startswith((SAMPLING, TOOLS)):
        return f"options.{engine_field}"
    if engine_field in (PROMPT, MESSAGES):  # the prompt, after the chat template
        return "messages" if request.messages else "text"
    return engine_field
