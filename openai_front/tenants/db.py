"""The embedded store: one SQLite file holds the keys, the counters and the usage of one server.

Each part opens its own connection to the file (WAL: readers never wait for a writer) and holds a lock
around its statements, so that one connection serves every thread of the front.
"""
from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenant_keys (name TEXT PRIMARY KEY, key_hash TEXT UNIQUE NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tenant_admissions (key_hash TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS tenant_admissions_by_key ON tenant_admissions (key_hash, at);
CREATE TABLE IF NOT EXISTS tenant_tokens (key_hash TEXT NOT NULL, second INTEGER NOT NULL, tokens INTEGER NOT NULL,
                                          PRIMARY KEY (key_hash, second));
CREATE TABLE IF NOT EXISTS tenant_spent (key_hash TEXT NOT NULL, period TEXT NOT NULL, tokens INTEGER NOT NULL,
                                         PRIMARY KEY (key_hash, period));
CREATE TABLE IF NOT EXISTS tenant_usage (name TEXT NOT NULL, model TEXT NOT NULL, hour INTEGER NOT NULL,
    requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    cache_hits INTEGER NOT NULL, errors INTEGER NOT NULL, PRIMARY KEY (name, model, hour));
"""


class Database:
    """A connection to the tenants' SQLite file (":memory:" for one that lives as long as the object)."""

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level None: transactions are ours (BEGIN IMMEDIATE), never implicit.
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
        self._lock = threading.Lock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # a commit survives a crash of the process, not of the OS
        self._conn.executescript(SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection inside one write transaction: other processes on the file wait for its end."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
