"""The router's request: text, attachments and the JSON options, validated with clear errors."""
from __future__ import annotations

import json
import math
import unicodedata
from typing import Annotated, Any, Iterable, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import InputError, describe
from .embedding import MAX_INPUT_CHARS, MAX_INPUTS
from .jsonfield import json_object
from .sampling import SamplingParams, parse_sampling_parameters
from .tenancy import Prefer, safe_name, trace_context
from .tools import ResponseFormat, Tool, ToolCall, ToolChoice, check_tools
from ..vocabulary import ATTACHMENT_KINDS, Language, UseCase

MAX_ATTACHMENT_BYTES = {"image": 10 * 2**20, "audio": 25 * 2**20, "video": 64 * 2**20}
MAX_TIMEOUT_S = 600.0
MIN_HEARTBEAT_S = 0.2
MAX_TURNS = 64
MAX_CONVERSATION_CHARS = 32_000


def decode_text(raw: str | bytes | None, max_chars: int, field: str = "text") -> str:
    """Return the text, or raise InputError naming `field`: bad UTF-8 or over `max_chars`."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(field, f"not valid UTF-8 (bad byte at position {exc.start})") from None
    text = raw or ""
    if len(text) > max_chars:
        raise InputError(field, f"{len(text)} characters exceeds the limit of {max_chars}")
    return text


def attachment_kinds(values: Iterable[str | bytes], field: str = "attachments") -> tuple[str, ...]:
    """Known attachment kinds, in order, once each ("" entries skipped)."""
    kinds = []
    for value in values:
        kind = (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).strip().lower()
        if kind and kind not in ATTACHMENT_KINDS:
            raise InputError(field, f"unknown kind {kind!r}. Available: {list(ATTACHMENT_KINDS)}")
        if kind:
            kinds.append(kind)
    return tuple(dict.fromkeys(kinds))


def is_blank(text: str) -> bool:
    """Nothing to read: only whitespace and invisible format characters (Unicode category Cf: zero-width
    space and joiners, BOM, word joiner, soft hyphen), which str.strip() keeps."""
    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in text)


def check_query(text: str, kinds: tuple[str, ...]) -> None:
    """A query needs visible text or an attachment."""
    if kinds or not is_blank(text):
        return
    # Name the invisible characters, so that a client can see why text that looks non-empty is refused.
    invisible = sorted({f"U+{ord(c):04X}" for c in text if not c.isspace()})
    seen = f" (only invisible characters: {', '.join(invisible[:5])})" if invisible else ""
    raise InputError("text", f"empty{seen}, and no image, audio or video was given")


def outcome_score(value: float) -> float:
    """A client's score of an answer: a finite number from 0 (useless) to 1 (just right)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or not 0 <= value <= 1:
        raise ValueError(f"{value!r} must be between 0 and 1")
    return float(value)


class Feedback(BaseModel):
    """How well an answer served its client: the decision's id (its `id`) and a score (outcome_score)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    decision_id: str = Field(min_length=1, max_length=64)
    score: float

    @field_validator("score")
    @classmethod
    def _score(cls, value: float) -> float:
        return outcome_score(value)


def model_name(value: str) -> str:
    """A model's name as a request gives it: no paths."""
    if not value or "/" in value or ".." in value or "\\" in value:
        raise ValueError(f"{value!r} is not a model name (no paths)")
    return value


def _embed_text(text: str) -> str:
    """One text to embed: something to read, within the request's size bound (the model counts its tokens)."""
    if is_blank(text):
        raise ValueError("empty")
    if len(text) > MAX_INPUT_CHARS:
        raise ValueError(f"{len(text)} characters exceeds the limit of {MAX_INPUT_CHARS}")
    return text


class Embed(BaseModel):
    """Vectors instead of an answer: the profile's embedding model embeds each text (contract.embedding)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    input: list[Annotated[str, AfterValidator(_embed_text)]]

    @field_validator("input", mode="before")
    @classmethod
    def _count(cls, value: Any) -> Any:
        # Before each text is read: a list over the limit is refused as a whole, and cheaply.
        if isinstance(value, list) and not value:
            raise ValueError("empty: at least one text to embed")
        if isinstance(value, list) and len(value) > MAX_INPUTS:
            raise ValueError(f"{len(value)} texts exceeds the limit of {MAX_INPUTS}")
        return value


class RouteOptions(BaseModel):
    """The `options` input (JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    use_case: UseCase | None = None
    language: Language | None = None
    max_latency_ms: float | None = Field(None, ge=1, le=3_600_000)
    # The contract every text generator honours; checked here, before any model is loaded.
    sampling_parameters: SamplingParams = Field(default_factory=SamplingParams)
    stream: bool = False
    allow_fallback: bool = True
    model: str | None = None
    # What to favour, like RouteLLM's threshold: the best model, the cheapest that suffices for the
    # query's complexity, or the cheapest (routing.policy).
    prefer: Prefer = "balanced"
    timeout_s: float = Field(120.0, ge=0.1, le=MAX_TIMEOUT_S)
    # With the server's admin key, options.model is loaded even if it evicts a model within its
    # minimum residency (the anti-thrashing rule binds everyone else).
    admin_key: str | None = None
    # Answer with the router's deep health report instead of routing (text and attachments ignored).
    health: bool = False
    # The response cache: off, exact (same question, normalized) or semantic (a paraphrase too);
    # None: the server's setting (TMR_CACHE_MODE).
    cache: Literal["off", "exact", "semantic"] | None = None
    # With the admin key: the cache's statistics, or clear it (answered like `health`, instead of routing).
    cache_admin: Literal["stats", "clear"] | None = None
    # A client's score of an answer it was served, for the decision log (answered like `health`, instead of routing).
    feedback: Feedback | None = None
    # Vectors of these texts from the embedding model, instead of an answer: nothing is classified or cached.
    embed: Embed | None = None
    # Send an empty response every heartbeat_s seconds while working (gRPC streams), so that the
    # client can tell a router whose process died from one that is busy (serving.heartbeat).
    heartbeat_s: float | None = Field(None, ge=MIN_HEARTBEAT_S, le=60)
    # Agents (OpenAI's shapes): functions the model may call, whether it must, and the output's form.
    tools: list[Tool] = Field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None
    # A key's bounds (the front sets them from the client's key; routing.tenancy obeys them): its name,
    # the models that may answer (None: any), the use cases it may be served in (None: any), the highest
    # prefer it gets, and the cache namespace its answers are kept under (None: the tenant's own).
    tenant: Annotated[str, AfterValidator(safe_name)] | None = None
    allowed_models: list[Annotated[str, AfterValidator(model_name)]] | None = Field(None, min_length=1)
    allowed_use_cases: list[UseCase] | None = Field(None, min_length=1)
    prefer_ceiling: Prefer | None = None
    cache_namespace: Annotated[str, AfterValidator(safe_name)] | None = None
    # W3C trace context of the client's request, passed on to the router's spans.
    traceparent: Annotated[str, AfterValidator(trace_context)] | None = None

    @property
    def wants_tools(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def constrained(self) -> bool:
        """The output must follow a grammar: a forced tool call, or JSON."""
        forced = self.wants_tools and self.tool_choice not in (None, "auto")
        return forced or (self.response_format is not None and self.response_format.type != "text")

    @property
    def namespace(self) -> str | None:
        """Where this request's answers are cached: answers kept under one namespace never serve another."""
        return self.cache_namespace or self.tenant

    @field_validator("model")
    @classmethod
    def _model_name(cls, value: str) -> str:
        return model_name(value)

    @field_validator("sampling_parameters", mode="before")
    @classmethod
    def _sampling(cls, value: Any) -> SamplingParams:
        if isinstance(value, SamplingParams):
            return value
        return parse_sampling_parameters(value if isinstance(value, dict) else "" if value is None else str(value))

    def wire(self) -> dict[str, Any]:
        """The options as JSON takes them: only what differs from the defaults."""
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude_none=True)


def parse_options(raw: bytes | str | dict | None) -> RouteOptions:
    values = json_object(raw, "options")
    try:
        opts = RouteOptions.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["loc"] == ("sampling_parameters",) and isinstance(first.get("ctx", {}).get("error"), InputError):
            inner = first["ctx"]["error"]  # names its own field: sampling_parameters.<name>
            raise InputError(f"options.{inner.field}", str(inner).partition(": ")[2]) from None
        raise InputError(*describe(exc, RouteOptions, "options", "unknown option")) from None
    check_tools(tuple(opts.tools), opts.tool_choice, opts.response_format)
    return opts


class Message(BaseModel):
    """One turn of a conversation."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    role: Literal["system", "user", "assistant", "tool"]
    content: str  # the last turn's may be empty when the request carries an attachment (check_query)
    tool_calls: list[ToolCall] | None = None  # an assistant's calls
    tool_call_id: str | None = None           # a tool turn: the call it answers

    def as_turn(self) -> dict[str, Any]:
        """The turn as JSON takes it (OpenAI's shape: a call's arguments as JSON text)."""
        return self.model_dump(exclude_none=True)


def parse_messages(raw: bytes | str | list | None, max_chars: int = MAX_CONVERSATION_CHARS,
                   max_turns: int = MAX_TURNS) -> tuple[Message, ...]:
    """The `messages` input: a JSON array of {role, content} (or the list itself), within the turn and
    character limits (the client's conversation; an engine passes its own, for turns the router wrote)."""
    if raw is None or raw in (b"", ""):
        return ()
    data = raw if isinstance(raw, list) else _json(raw, max_chars)
    if not isinstance(data, list):
        raise InputError("messages", f"expected a JSON array of {{role, content}} turns, got {type(data).__name__}")
    _check_turns(len(data), max_turns)
    turns = []
    for i, item in enumerate(data):
        try:
            turns.append(Message.model_validate(item))
        except ValidationError as exc:
            raise InputError(*describe(exc, Message, f"messages[{i}]")) from None
        if is_blank(turns[-1].content) and i < len(data) - 1 and not turns[-1].tool_calls:
            raise InputError(f"messages[{i}].content", "empty")
    check_conversation(tuple(turns), max_chars, max_turns)
    return tuple(turns)


def check_conversation(turns: tuple[Message, ...], max_chars: int = MAX_CONVERSATION_CHARS,
                       max_turns: int = MAX_TURNS) -> None:
    """A conversation within the turn and character limits, each tool turn answering an earlier call."""
    _check_turns(len(turns), max_turns)
    _check_tool_turns(list(turns))
    total = sum(len(t.content) for t in turns)
    if total > max_chars:
        raise InputError("messages", f"{total} characters in all exceeds the limit of {max_chars}")


def _check_turns(count: int, limit: int) -> None:
    if count > limit:
        raise InputError("messages", f"{count} turns exceeds the limit of {limit}")


# JSON text per character of content at most: a control character is written \u0000 (6), plus each
# turn's keys and its calls.
_JSON_PER_CHAR, _JSON_PER_TURN = 6, 4096


def _json(raw: bytes | str, max_chars: int) -> Any:
    try:
        return json.loads(decode_text(raw, _JSON_PER_CHAR * max_chars + _JSON_PER_TURN * (MAX_TURNS + 1), "messages"))
    except json.JSONDecodeError as exc:
        raise InputError("messages", f"not valid JSON ({exc.msg} at position {exc.pos})") from None


def _check_tool_turns(turns: list[Message]) -> None:
    """A tool turn answers a call an earlier assistant turn made; only assistants call, only tools answer."""
    calls: set[str] = set()
    for i, turn in enumerate(turns):
        if turn.tool_calls and turn.role != "assistant":
            raise InputError(f"messages[{i}].tool_calls", f"only assistant turns make calls, not {turn.role!r}")
        if turn.role == "tool":
            if turn.tool_call_id is None:
                raise InputError(f"messages[{i}].tool_call_id", "required in a tool turn")
            if turn.tool_call_id not in calls:
                raise InputError(f"messages[{i}].tool_call_id",
                                 f"{turn.tool_call_id!r} answers no call of an earlier assistant turn. "
                                 f"Available: {sorted(calls)}")
        elif turn.tool_call_id is not None:
            raise InputError(f"messages[{i}].tool_call_id", f"only tool turns answer calls, not {turn.role!r}")
        calls.update(c.id for c in turn.tool_calls or ())
