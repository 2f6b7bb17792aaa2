"""Key records in Redis, shared by every replica of the front.

Each replica keeps the last state it read of each key and the set of revoked keys (re-read whenever a
revocation happened anywhere). While Redis is unreachable, lookups answer from that view: a key seen
valid stays valid, a key revoked (seen so, or listed as revoked) or never seen is refused.
"""
from __future__ import annotations

from typing import Any, Callable

import redis

from .keys import KeyExists, KeyFields, KeySpec, StoreUnavailable, TenantKey, UnknownKey, hash_key, new_key, record_of
from .outage import UNAVAILABLE, Outage, connect

PREFIX = "tmr:tenant"
NAMES, REVOKED, REVOKED_VERSION = f"{PREFIX}:names", f"{PREFIX}:revoked", f"{PREFIX}:revoked:version"

# Claims the name and writes the record in one step: two admins creating one name cannot both win.
CREATE = """
if redis.call('SETNX', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return 1
"""


def record_key(key_hash: str) -> str:
    return f"{PREFIX}:key:{key_hash}"


def name_key(name: str) -> str:
    return f"{PREFIX}:name:{name}"


class RedisKeyStore:
    """Keys in Redis by key hash, with a name index; the key string itself is never written."""

    def __init__(self, url: str, timeout_s: float = 1.0, outage: Outage | None = None) -> None:
        self._redis = connect(url, timeout_s)
        self._create = self._redis.register_script(CREATE)
        self._outage = outage or Outage()
        self._seen: dict[str, TenantKey] = {}  # key hash -> its record as last read
        self._revoked: set[str] = set()
        self._revoked_version: str | None = None

    @property
    def degraded(self) -> bool:
        return self._outage.degraded

    def create(self, spec: KeySpec) -> tuple[str, TenantKey]:
        key, record = new_key(), record_of(spec)
        h = hash_key(key)
        made = self._admin(lambda: self._create(keys=[name_key(record.name), record_key(h), NAMES],
                                                args=[h, record.model_dump_json(), record.name]))
        if not made:
            raise KeyExists(spec.name)
        return key, record

    def by_hash(self, key_hash: str) -> TenantKey | None:
        if self._outage.try_now():
            try:
                record = self._read(key_hash)
                self._outage.ok()
                return record
            except UNAVAILABLE:
                self._outage.failed()
        return self._last_view(key_hash)

    def list(self) -> list[TenantKey]:
        def read() -> list[TenantKey]:
            names = sorted(self._redis.smembers(NAMES))
            hashes = [h for h in self._redis.mget([name_key(n) for n in names]) if h] if names else []
            raws = self._redis.mget([record_key(h) for h in hashes]) if hashes else []
            return [TenantKey.model_validate_json(raw) for raw in raws if raw]
        return self._admin(read)

    def update(self, name: str, changes: KeyFields) -> TenantKey:
        return self._rewrite(name, lambda record: record.changed(changes))

    def revoke(self, name: str) -> TenantKey:
        return self._rewrite(name, lambda record: record.model_copy(update={"revoked": True}))

    def close(self) -> None:
        self._redis.close()

    def _read(self, key_hash: str) -> TenantKey | None:
        pipe = self._redis.pipeline(transaction=False)
        raw, version = pipe.get(record_key(key_hash)).get(REVOKED_VERSION).execute()
        if version != self._revoked_version:
            self._revoked, self._revoked_version = set(self._redis.smembers(REVOKED)), version
        if raw is None:
            self._seen.pop(key_hash, None)
            return None
        record = self._seen[key_hash] = TenantKey.model_validate_json(raw)
        return record

    def _last_view(self, key_hash: str) -> TenantKey | None:
        record = self._seen.get(key_hash)
        if record is not None and key_hash in self._revoked:
            return record.model_copy(update={"revoked": True})
        return record

    def _rewrite(self, name: str, change: Callable[[TenantKey], TenantKey]) -> TenantKey:
        """Read, change and write a record in one transaction (retried if another admin wrote it meanwhile)."""
        def rewrite(pipe: redis.client.Pipeline) -> TenantKey:
            h = pipe.get(name_key(name))
            raw = pipe.get(record_key(h)) if h else None
            if raw is None:
                raise UnknownKey(name)
            record = change(TenantKey.model_validate_json(raw))
            pipe.multi()
            pipe.set(record_key(h), record.model_dump_json())
            if record.revoked:
                pipe.sadd(REVOKED, h).incr(REVOKED_VERSION)
            return record

        def transact() -> TenantKey:
            h = self._redis.get(name_key(name))
            return self._redis.transaction(rewrite, name_key(name), *([record_key(h)] if h else []),
                                           value_from_callable=True)
        return self._admin(transact)

    def _admin(self, work: Callable[[], Any]) -> Any:
        try:
            return work()
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"the key store (Redis) is unavailable: {exc}") from None
