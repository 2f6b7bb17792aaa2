"""The decision log: every answer the router served (its decision, one record) and every score a client
gave it afterwards (POST /v1/feedback, options.feedback: one outcome record), kept where a policy
fitted to outcomes can read them back (`read`).

Two stores take the same JSON lines: a JSONL file (one object a line, appended under a lock) and a
Redis list shared by every replica (plus one key per decision id, kept DECISION_TTL_S, so that any
replica can tell a known id). A log that fails (a full disk, Redis down) never fails a request: the
record is dropped and the failure logged, once a minute at most.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol
from urllib.parse import urlsplit

from ..contract.request import RouteOptions, outcome_score
from ..contract.router import RouterAnswer
from ..errors import InputError, ServingError
from .learned import form_of
from .tenancy import prefer_of

log = logging.getLogger("model_router.decision_log")
OFF = "off"
LIST_KEY = "tmr:decision_log"          # the Redis list of records (not under the cache's prefix: never cleared with it)
ID_KEY = "tmr:decision_id:"            # + a decision's id: the key that says it is known
DECISION_TTL_S = 30 * 24 * 3600        # how long feedback on a decision is taken (Redis)
KNOWN_IDS = 1_000_000                  # the JSONL store's recent ids (kept as 16 bytes: ~100 MB at most)
REDIS_TIMEOUT_S = 0.25                 # logging must not add more than this to an answer
WARN_EVERY_S = 60.0
PAUSE_S = 5.0                          # after a failure, decisions are dropped this long: a Redis that
                                       # is gone costs one timeout, not one per answer
_ID = re.compile(r"[0-9a-f]{32}")      # routing.decision.new_decision_id


def decision_record(decision: dict[str, Any], options: RouteOptions, now: float) -> dict[str, Any]:
    """The record of a served answer; `complexity` is the classifier's label (the decision keeps it as classified),
    `prefer` the preference routing weighed (a key's ceiling applied), `tenant` the client's key (None: none)."""
    return {"type": "decision", "id": decision["id"], "time": now, "model": decision.get("model", ""),
            "use_case": decision.get("use_case", ""), "language": decision.get("language", ""),
            "complexity": decision.get("complexity", ""), "form": form_of(options.wants_tools, options.constrained),
            "prefer": prefer_of(options), "cache": decision.get("cache", ""), "tenant": options.tenant}


class Store(Protocol):
    """Where records go: `append` raises (OSError, a Redis error) when it cannot keep one."""

    where: str

    def append(self, record: dict[str, Any]) -> None: ...
    def known(self, decision_id: str) -> bool: ...


class JsonlStore:
    """One JSON object a line in `path`; the ids of the last `keep` decisions in memory (read back from
    the file at start, so that feedback on an answer from before a restart is taken)."""

    def __init__(self, path: Path, keep: int = KNOWN_IDS) -> None:
        self.path, self.where = Path(path), str(path)
        self._lock = threading.Lock()
        self._order: deque[bytes] = deque()
        self._ids: set[bytes] = set()
        self._keep = keep
        if not self.path.is_file():
            return
        for record in _file_records(self.path):
            if record.get("type") == "decision" and isinstance(record.get("id"), str):
                self._remember(record["id"])
        with self.path.open("rb+") as f:  # a last line cut short (a crash mid-write) is ended: ours start anew
            if f.seek(0, os.SEEK_END) and (f.seek(-1, os.SEEK_END), f.read(1))[1] != b"\n":
                f.write(b"\n")

    def _remember(self, decision_id: str) -> None:
        if not _ID.fullmatch(decision_id):
            return
        key = bytes.fromhex(decision_id)
        if key in self._ids:
            return
        self._ids.add(key)
        self._order.append(key)
        if len(self._order) > self._keep:
            self._ids.discard(self._order.popleft())

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # another process on the same file (a second router) waits
                os.write(fd, line)
            finally:
                os.close(fd)  # closing releases the flock
            if record["type"] == "decision":
                self._remember(record["id"])

    def known(self, decision_id: str) -> bool:
        with self._lock:
            return bool(_ID.fullmatch(decision_id)) and bytes.fromhex(decision_id) in self._ids


class RedisStore:
    """RPUSH of the same lines to LIST_KEY, and ID_KEY<id> (with a TTL) for each decision."""

    def __init__(self, url: str, timeout_s: float = REDIS_TIMEOUT_S) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # As the response cache's client (cache.store.RedisStore): no retries, a short timeout.
        self._client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                            retry=Retry(NoBackoff(), 0))
        parts = urlsplit(url)
        self.where = url.replace(f":{parts.password}@", ":***@", 1) if parts.password else url

    def append(self, record: dict[str, Any]) -> None:
        pipe = self._client.pipeline(transaction=False)
        pipe.rpush(LIST_KEY, json.dumps(record, ensure_ascii=False, separators=(",", ":")))
        if record["type"] == "decision":
            pipe.set(ID_KEY + record["id"], 1, ex=DECISION_TTL_S)
        pipe.execute()

    def known(self, decision_id: str) -> bool:
        return bool(_ID.fullmatch(decision_id)) and bool(self._client.exists(ID_KEY + decision_id))


def open_store(setting: str) -> Store | None:
    """The store a setting names (RouterSettings.decision_log): "off" (None), a redis:// URL, or a path."""
    if not setting or setting.strip().lower() == OFF:
        return None
    if urlsplit(setting).scheme in ("redis", "rediss"):
        return RedisStore(setting)
    return JsonlStore(Path(setting))


class DecisionLog:
    """Appends decisions and outcomes to its store (none: the log is off and feedback is refused)."""

    def __init__(self, store: Store | None, clock: Callable[[], float] = time.time) -> None:
        self.store, self.clock = store, clock
        self._warned_at = self._paused_until = float("-inf")
        self._dropped = 0
        self._lock = threading.Lock()

    @classmethod
    def open(cls, setting: str) -> DecisionLog:
        try:
            return cls(open_store(setting))
        except (OSError, ValueError) as exc:  # an unreadable file: the router serves without the log
            log.warning("decision log %s cannot be opened, serving without it: %s", setting, exc)
            return cls(None)

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def decided(self, decision: dict[str, Any], options: RouteOptions) -> None:
        """Log a served answer's decision. Never raises: a failing log costs the record, not the answer."""
        if self.store is None:
            return
        if time.monotonic() < self._paused_until:
            with self._lock:
                self._dropped += 1
            return
        try:
            self.store.append(decision_record(decision, options, self.clock()))
        except Exception as exc:  # the store's own errors (OSError, redis.RedisError) and any other
            self._failed(exc)

    def served(self, answers: Iterable[RouterAnswer], options: RouteOptions) -> Iterator[RouterAnswer]:
        """`answers` passed through, the decision of the final one logged (decided) before it goes out."""
        for answer in answers:
            if answer.final:
                self.decided(answer.decision, options)
            yield answer

    def outcome(self, decision_id: str, score: float) -> dict[str, Any]:
        """Log a client's score of a decision it was served: the answer to its feedback. InputError names
        the field at fault; ServingError: the log is off, or its store cannot take the record now."""
        try:
            score = outcome_score(score)
        except ValueError as exc:
            raise InputError("feedback.score", str(exc)) from None
        if self.store is None:
            raise ServingError("the decision log is off on this server (TMR_DECISION_LOG): feedback is not kept")
        try:
            known = self.store.known(decision_id)
        except Exception as exc:
            self._failed(exc)
            raise ServingError(f"the decision log ({self.store.where}) cannot be read now: {exc}") from None
        if not known:
            raise InputError("feedback.decision_id", f"unknown decision id {decision_id[:64]!r}: not one of this "
                                                     "server's answers (the decision's `id`), or too old")
        try:
            self.store.append({"type": "outcome", "id": decision_id, "time": self.clock(), "score": score})
        except Exception as exc:
            self._failed(exc)
            raise ServingError(f"the decision log ({self.store.where}) cannot keep the outcome now: {exc}") from None
        return {"decision_id": decision_id, "score": score, "recorded": True}

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            self._dropped += 1
            now = time.monotonic()
            self._paused_until = now + PAUSE_S
            if now - self._warned_at < WARN_EVERY_S:
                return
            self._warned_at, dropped, self._dropped = now, self._dropped, 0
        log.warning("decision log %s failed (%d record(s) lost since the last warning): %s",
                    self.store.where if self.store else OFF, dropped, exc)


def _records(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The records among `lines`; a line cut short (the process died mid-write) is skipped."""
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


def _file_records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as f:
        yield from _records(f)


def _redis_records(url: str, batch: int = 10_000) -> Iterator[dict[str, Any]]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        start = 0
        while lines := client.lrange(LIST_KEY, start, start + batch - 1):
            yield from _records(lines)
            start += len(lines)
    finally:
        client.close()


def read(source: str | Path) -> Iterator[dict[str, Any]]:
    """Every record of a log, oldest first: `source` is its file or its redis:// URL."""
    if isinstance(source, str) and urlsplit(source).scheme in ("redis", "rediss"):
        return _redis_records(source)
    return _file_records(Path(source))
