"""Key records in the embedded SQLite file (one server)."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable

from .db import Database
from .keys import KeyExists, KeyFields, KeySpec, TenantKey, UnknownKey, hash_key, new_key, record_of


class SqliteKeyStore:
    """Keys in one SQLite file, by name and by key hash (the key string itself is never written)."""

    degraded = False  # a local file is never unreachable

    def __init__(self, path: str | Path) -> None:
        self._db = Database(path)

    def create(self, spec: KeySpec) -> tuple[str, TenantKey]:
        key, record = new_key(), record_of(spec)
        try:
            with self._db.transaction() as conn:
                conn.execute("INSERT INTO tenant_keys (name, key_hash, record) VALUES (?, ?, ?)",
                             (record.name, hash_key(key), record.model_dump_json()))
        except sqlite3.IntegrityError:
            raise KeyExists(spec.name) from None
        return key, record

    def by_hash(self, key_hash: str) -> TenantKey | None:
        rows = self._db.read("SELECT record FROM tenant_keys WHERE key_hash = ?", (key_hash,))
        return TenantKey.model_validate_json(rows[0][0]) if rows else None

    def list(self) -> list[TenantKey]:
        rows = self._db.read("SELECT record FROM tenant_keys ORDER BY name")
        return [TenantKey.model_validate_json(raw) for (raw,) in rows]

    def update(self, name: str, changes: KeyFields) -> TenantKey:
        return self._rewrite(name, lambda record: record.changed(changes))

    def revoke(self, name: str) -> TenantKey:
        return self._rewrite(name, lambda record: record.model_copy(update={"revoked": True}))

    def _rewrite(self, name: str, change: Callable[[TenantKey], TenantKey]) -> TenantKey:
        with self._db.transaction() as conn:
            row = conn.execute("SELECT record FROM tenant_keys WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise UnknownKey(name)
            record = change(TenantKey.model_validate_json(row[0]))
            conn.execute("UPDATE tenant_keys SET record = ? WHERE name = ?", (record.model_dump_json(), name))
        return record

    def close(self) -> None:
        self._db.close()
