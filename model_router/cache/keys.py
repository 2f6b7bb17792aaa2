"""What makes two requests the same question: text normalization, the cache key and the semantic scope.

`key_of` takes the request as a dict of these fields (all optional; anything else is refused, so
that no answer-changing field is silently left out of the key):

- `messages`: the conversation, a list of {"role", "content"}; or `text`: a single user turn.
  Every turn's content is normalized (`normalize_text`).
- `attachments`: {kind: bytes | "sha256:<hex>"}: bytes are hashed, so the key holds no media.
- `options`: the routing options that change the answer (`use_case`, `language`, `model`,
  `prefer`, and a client key's bounds: `allowed_models`, `allowed_use_cases`, `prefer_ceiling`);
  other entries (timeouts, stream, admin key, cache mode, trace context) are dropped here.
- `sampling`: the sampling parameters; defaults filled in, so {} and {"temperature": 0} agree.
- `tools`, `constraints`: tools offered and output constraints (JSON schema, grammar): any JSON.
- `profile`: the serving profile (cpu, gpu); `revision`: the revision of the model(s) that may
  answer (a registry fingerprint or the named model's revision), so a new model misses old answers.
- `namespace`: whose answers these are (a client key's cache namespace, else its tenant's name): an
  answer kept under one namespace never serves another, exactly or by meaning.

A key's bounds and namespace enter the key only when set: the keys of requests without them stay as
they were (a Redis cache shared with replicas of an earlier release keeps serving them).
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import unicodedata
from typing import Any

from ..contract.sampling import SamplingParams, parse_sampling_parameters
from ..contract.tenancy import ANSWER_BOUNDS

KEY_PREFIX = "tmr:cache:v1:"
KEY_FIELDS = ("messages", "text", "attachments", "options", "sampling", "tools", "constraints",
              "profile", "revision", "namespace")
ANSWER_OPTIONS = ("use_case", "language", "model", "prefer")
_SPACE = re.compile(r"\s+")


class CacheKeyError(ValueError):
    """A request field given to the key is unknown or of the wrong shape."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def normalize_text(text: str) -> str:
    """NFC, case-folded, whitespace collapsed, final punctuation stripped ("What is AI?" == "what is  ai")."""
    text = _SPACE.sub(" ", unicodedata.normalize("NFC", text).casefold()).strip()
    end = len(text)
    # Unicode punctuation (P*) covers the danda (।), full stops and question marks of every script.
    while end and (unicodedata.category(text[end - 1]).startswith("P") or text[end - 1].isspace()):
        end -= 1
    return text[:end]


def _sampling(value: SamplingParams | dict | None) -> SamplingParams:
    return value if isinstance(value, SamplingParams) else parse_sampling_parameters(value or {})


def cacheable(sampling: SamplingParams | dict | None) -> tuple[bool, str]:
    """Whether an answer is a function of the request: greedy (temperature 0, our default) or seeded
    sampling. The reason ("" when cacheable) for the decision's `cache: skipped (...)`."""
    params = _sampling(sampling)
    if params.greedy or params.seed is not None:
        return True, ""
    return False, f"sampled without a seed (temperature {params.temperature:g})"


def attachment_digest(data: bytes | str) -> str:
    """sha256 of an attachment's bytes ("sha256:<hex>" strings pass through: a caller that hashed)."""
    if isinstance(data, str):
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", data):
            raise CacheKeyError("attachments", f"expected bytes or 'sha256:<64 hex>', got {data[:80]!r}")
        return data
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _turns(fields: dict[str, Any]) -> list[list[str]]:
    messages = fields.get("messages") or []
    if not isinstance(messages, (list, tuple)):
        raise CacheKeyError("messages", f"expected a list of {{role, content}}, got {type(messages).__name__}")
    turns = []
    for i, turn in enumerate(messages):
        role, content = (turn.get("role"), turn.get("content")) if isinstance(turn, dict) else \
            (getattr(turn, "role", None), getattr(turn, "content", None))
        if not isinstance(role, str) or not isinstance(content, str):
            raise CacheKeyError(f"messages[{i}]", f"expected {{role: str, content: str}}, got {turn!r:.80}")
        turns.append([role, normalize_text(content)])
    if fields.get("text") is not None and not turns:
        turns.append(["user", normalize_text(str(fields["text"]))])
    return turns


def canonical(fields: dict[str, Any], with_query: bool = True) -> dict[str, Any]:
    """The request as the key sees it; without its last user turn when `with_query` is False (the
    semantic scope: everything that must be equal for a paraphrase to share an answer)."""
    unknown = sorted(set(fields) - set(KEY_FIELDS))
    if unknown:
        raise CacheKeyError(unknown[0], f"not a cache key field. Available: {list(KEY_FIELDS)}")
    turns = _turns(fields)
    if not with_query and turns and turns[-1][0] == "user":
        turns = turns[:-1]
    options = fields.get("options") or {}
    if not isinstance(options, dict):
        options = options.model_dump() if hasattr(options, "model_dump") else dict(options)
    return {
        "turns": turns,
        "attachments": sorted((str(k), attachment_digest(v)) for k, v in (fields.get("attachments") or {}).items()),
        "options": {k: options.get(k) for k in ANSWER_OPTIONS},
        "sampling": _sampling(fields.get("sampling")).model_dump(mode="json"),
        "tools": fields.get("tools"),
        "constraints": fields.get("constraints"),
        "profile": fields.get("profile"),
        "revision": fields.get("revision"),
        **_tenancy(fields.get("namespace"), options),
    }


def _tenancy(namespace: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The namespace and a key's bounds, where set (module docstring); lists as sets: their order routes nothing."""
    if namespace is not None and not isinstance(namespace, str):
        raise CacheKeyError("namespace", f"expected a string, got {type(namespace).__name__}")
    bounds = {k: sorted(v) if isinstance(v, (list, tuple)) else v
              for k in ANSWER_BOUNDS if (v := options.get(k)) is not None}
    return {"tenancy": {"namespace": namespace, **bounds}} if namespace is not None or bounds else {}


def _digest(value: Any) -> str:
    try:
        blob = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_bytes)
    except TypeError as exc:
        raise CacheKeyError("tools/constraints", f"not JSON-able ({exc})") from None
    return hashlib.sha256(blob.encode()).hexdigest()


def _bytes(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


def key_of(request_fields: dict[str, Any]) -> str:
    """The cache key of a request (fields: see the module's docstring)."""
    return KEY_PREFIX + _digest(canonical(request_fields))


def scope_of(request_fields: dict[str, Any]) -> str:
    """The semantic scope: the key of everything but the last user turn (same options, sampling,
    attachments, earlier turns, profile and revision)."""
    return KEY_PREFIX + "scope:" + _digest(canonical(request_fields, with_query=False))


def query_of(request_fields: dict[str, Any]) -> str:
    """The text a semantic match compares: the last user turn (NFC, as written)."""
    messages = request_fields.get("messages") or []
    if messages:
        last = messages[-1]
        content = last.get("content") if isinstance(last, dict) else getattr(last, "content", "")
        return unicodedata.normalize("NFC", content or "")
    return unicodedata.normalize("NFC", str(request_fields.get("text") or ""))
