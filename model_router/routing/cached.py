"""The router's side of the response cache: a RouterRequest as the cache's key fields, its answer kept
and replayed as it was sent, and which answers are never kept.

A request is looked up before it is classified; its answer is kept after it was made, unless it
failed, was cancelled, came after a fallback, was degraded, or passed over a model that is recovering
or cooling down (the answer of a stand-in must not outlive the outage).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Generator, Iterator, TypeVar

from ..cache import CachedAnswer, ResponseCache, cacheable, key_of, query_of, scope_of
from ..contract.router import RouterAnswer, RouterRequest
from ..registry import Registry
from .decision import new_decision_id

log = logging.getLogger("model_router.cache")
# What the decision of a replayed answer says of this request: nothing was classified, loaded or generated.
_NOT_DONE_AGAIN = {"load_ms": 0.0, "classifier_ms": 0.0, "select_ms": 0.0}
T = TypeVar("T")


@dataclass(frozen=True)
class Lookup:
    """What the cache said of one request; `key` is "" when the request is not cached at all."""

    why: str  # the decision's `cache`: hit | hit: semantic 0.972 | miss | skipped: <why>
    key: str = ""
    answer: CachedAnswer | None = None
    scope: str | None = None  # semantic requests: where (and with which text) the answer is indexed
    query: str | None = None
    tenant: str | None = None  # the client's key that asked: a replayed decision names it, not the one that was kept


def _json(value: Any) -> Any:
    return value.model_dump(mode="json", exclude_none=True) if hasattr(value, "model_dump") else value


def key_fields(request: RouterRequest, profile: str, revision: str) -> dict[str, Any]:
    """Everything that changes the answer, as model_router.cache.keys takes it."""
    opts = request.options
    # An assistant's tool calls and the ids a tool turn answers change the answer, not only the text.
    calls = [[i, [_json(c) for c in m.tool_calls or ()], m.tool_call_id] for i, m in enumerate(request.messages)
             if m.tool_calls or m.tool_call_id]
    return {
        "messages": [{"role": m.role, "content": m.content} for m in request.messages] or None,
        "text": request.text,
        "attachments": request.attachments,
        "options": opts,
        "sampling": opts.sampling_parameters,
        "tools": {"tools": [_json(t) for t in opts.tools], "tool_choice": _json(opts.tool_choice),
                  "parallel_tool_calls": opts.parallel_tool_calls, "turn_calls": calls},
        "constraints": _json(opts.response_format),
        "profile": profile,
        "revision": revision,
        "namespace": opts.namespace,  # one tenant's answers never reach another, unless they share it on purpose
    }


_MODEL_FILES = ("config.pbtxt", "1/model.json")


def revision_of(registry: Registry, profile: str, repository: Path | None = None) -> str:
    """A fingerprint of what may answer: the profile's chains and registry entries and, when the model
    repository is at hand, its models' configs. A changed model misses every answer of the old one."""
    digest = hashlib.sha256(registry.profile(profile).model_dump_json().encode())
    for spec in sorted(registry.managed(profile), key=lambda m: m.name):
        digest.update(spec.model_dump_json().encode())
        for name in _MODEL_FILES:
            path = repository / spec.name / name if repository else None
            if path is not None and path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class Revision:
    """revision_of, worked out again whenever a model's files change on disk: a model edited and reloaded
    while the router runs misses the old one's answers at once (a shared Redis outlives any router)."""

    def __init__(self, registry: Registry, profile: str, repository: Path | None = None) -> None:
        self.registry, self.profile, self.repository = registry, profile, repository
        self._paths = [repository / spec.name / name for spec in registry.managed(profile)
                       for name in _MODEL_FILES] if repository else []
        self._stamp: list[tuple[int, int] | None] | None = None
        self._value = ""

    def _stamps(self) -> list[tuple[int, int] | None]:
        stamps: list[tuple[int, int] | None] = []
        for path in self._paths:
            try:
                st = path.stat()
                stamps.append((st.st_mtime_ns, st.st_size))
            except OSError:
                stamps.append(None)
        return stamps

    def __call__(self) -> str:
        stamp = self._stamps()
        if stamp != self._stamp:
            self._value, self._stamp = revision_of(self.registry, self.profile, self.repository), stamp
        return self._value


class RouterCache:
    """Looks requests up and keeps their answers; without a ResponseCache every request is skipped.
    `revision` gives the current revision of what may answer (a Revision), asked at every lookup."""

    def __init__(self, cache: ResponseCache | None, profile: str, revision: Callable[[], str],
                 mode: str = "exact") -> None:
        self.cache, self.profile, self.revision, self.mode = cache, profile, revision, mode

    def lookup(self, request: RouterRequest) -> Lookup:
        mode = request.options.cache or self.mode
        if self.cache is None or not self.cache.enabled:
            return Lookup("skipped: cache off on this server")
        if mode == "off":
            return Lookup("skipped: off" + ("" if request.options.cache else " on this server"))
        if request.options.admin_key is not None:  # an admin's request acts (forces a switch): never replayed
            return Lookup("skipped: an admin's request")
        ok, why = cacheable(request.options.sampling_parameters)
        if not ok:
            return Lookup(f"skipped: {why}")
        asked = key_fields(request, self.profile, self.revision())
        scope, query = (scope_of(asked), query_of(asked)) if mode == "semantic" else (None, None)
        key = key_of(asked)
        try:
            answer, why = self.cache.get(key, scope, query, mode)
        except Exception as exc:  # the embedding model, say: the cache is a shortcut, never a reason to fail
            log.warning("response cache lookup failed, answering without it: %s", exc)
            return Lookup(f"skipped: cache error: {exc}")
        return Lookup(why, key, answer, scope, query, request.options.tenant)

    def keep(self, lookup: Lookup, answer: RouterAnswer, pieces: list[str], unhealthy: Callable[[str], bool]) -> None:
        """Keep a finished answer, unless it is one that must never be served again (module docstring)."""
        decision = answer.decision
        if self.cache is None or not lookup.key or lookup.answer is not None:
            return
        if decision.get("fallbacks") or decision.get("degraded") or answer.finish_reason == "abort":
            return
        if any(unhealthy(s["model"]) for s in decision.get("skipped", ())):
            return
        try:
            self.cache.put(lookup.key, CachedAnswer(answer, list(pieces)), lookup.scope, lookup.query)
        except Exception as exc:  # the answer stands; it is only not kept
            log.warning("response cache could not keep an answer: %s", exc)

    @staticmethod
    def replay(lookup: Lookup, stream: bool, total_ms: float) -> Iterator[RouterAnswer]:
        """The cached answer as the router sends one: its pieces when streaming, then the answer, with
        the decision that produced it (nothing was classified, loaded or generated this time), under an
        id of its own: feedback scores this answer, not the one it replays."""
        kept = lookup.answer
        if stream:
            for text in kept.pieces or ([kept.answer.text] if kept.answer.text else []):
                yield RouterAnswer(text, False)
        decision = {**kept.answer.decision, **_NOT_DONE_AGAIN, "id": new_decision_id(), "cache": lookup.why,
                    "total_ms": total_ms, "tenant": lookup.tenant}
        yield replace(kept.answer, decision=decision)


def recorded(events: Generator[RouterAnswer, None, T], pieces: list[str]) -> Generator[RouterAnswer, None, T]:
    """`events` passed through, each piece's text noted in `pieces`; closed with the caller (a cancelled
    stream gives its model's lease back at once)."""
    try:
        while True:
            try:
                piece = next(events)
            except StopIteration as stop:
                return stop.value
            pieces.append(piece.text)
            yield piece
    finally:
        events.close()
