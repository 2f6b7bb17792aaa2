"""Tenants: API keys that carry their own model and use-case allow-lists, limits, budget and usage.

The nouns: a key's record (TenantKey) in a KeyStore (SQLite or Redis), its limits checked and charged by
Counters (LocalCounters, RedisCounters, Degrading over both) and its use kept by Usage.
"""
from __future__ import annotations

from .degrading import Degrading
from .keys import KeyExists, KeyFields, KeySpec, KeyStore, StoreUnavailable, TenantKey, UnknownKey, hash_key
from .keys_redis import RedisKeyStore
from .keys_sqlite import SqliteKeyStore
from .limits import Admission, Admitted, Counters, LocalCounters, Refused
from .limits_redis import RedisCounters
from .outage import Outage
from .usage import RedisUsage, SqliteUsage, Usage, UsageRow

__all__ = ["Admission", "Admitted", "Counters", "Degrading", "KeyExists", "KeyFields", "KeySpec", "KeyStore",
           "LocalCounters", "Outage", "RedisCounters", "RedisKeyStore", "RedisUsage", "Refused", "SqliteKeyStore",
           "SqliteUsage", "StoreUnavailable", "TenantKey", "UnknownKey", "Usage", "UsageRow", "hash_key"]
