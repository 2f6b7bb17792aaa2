"""Tenant keys and limits shared by two replicas (two instances) on one real redis-server, and what each
does when that server stops: a revoked key stays out, limits hold per replica, never none."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Iterator

import pytest

from openai_front.tenants import (Admitted, Degrading, KeyExists, KeyFields, KeySpec, LocalCounters, Outage,
                                  RedisCounters, RedisKeyStore, Refused, StoreUnavailable, hash_key)
from openai_front.tenants.keys import record_of

from ..integration.services import RedisServer
from .test_tenants import T0, at_once, key, utc


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


class Clock:
    """A monotonic clock the test moves (Outage's retry delay), instead of sleeping."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def everything_in(server: RedisServer) -> bytes:
    """Every key and value the server holds, as bytes."""
    seen = []
    for name in server.client.scan_iter():
        kind = server.client.type(name)
        value = {b"string": lambda: [server.client.get(name)],
                 b"hash": lambda: server.client.hgetall(name).items(),
                 b"set": lambda: server.client.smembers(name),
                 b"zset": lambda: server.client.zrange(name, 0, -1)}[kind]()
        seen += [name, *(b"".join(v) if isinstance(v, tuple) else v for v in value)]
    return b"\n".join(seen)


def test_keys_are_stored_only_hashed_and_both_replicas_see_them(redis_server: RedisServer) -> None:
    one, two = RedisKeyStore(redis_server.url), RedisKeyStore(redis_server.url)
    plain, record = one.create(KeySpec(name="team-a", models=["smollm2"], rpm=5))
    stored = everything_in(redis_server)
    assert plain.encode() not in stored and plain.removeprefix("tmr-").encode() not in stored
    assert hash_key(plain).encode() in stored
    assert two.by_hash(hash_key(plain)) == record and two.by_hash(plain) is None
    with pytest.raises(KeyExists):
        two.create(KeySpec(name="team-a"))
    assert [k.name for k in two.list()] == ["team-a"]
    assert two.update("team-a", KeyFields(tpm=9)).tpm == 9
    assert one.by_hash(hash_key(plain)).tpm == 9 and one.by_hash(hash_key(plain)).rpm == 5


def test_two_admins_creating_one_name_give_one_key(redis_server: RedisServer) -> None:
    stores = [RedisKeyStore(redis_server.url) for _ in range(2)]
    made = at_once(10, lambda i: _try_create(stores[i % 2], "team-a"))
    assert made.count(True) == 1


def _try_create(store: RedisKeyStore, name: str) -> bool:
    try:
        store.create(KeySpec(name=name))
        return True
    except KeyExists:
        return False


def test_a_revocation_is_seen_by_the_other_replica_at_once(redis_server: RedisServer) -> None:
    one, two = RedisKeyStore(redis_server.url), RedisKeyStore(redis_server.url)
    plain, _ = one.create(KeySpec(name="team-a"))
    assert two.by_hash(hash_key(plain)).refusal(T0) is None
    one.revoke("team-a")
    assert two.by_hash(hash_key(plain)).refusal(T0) == "the API key 'team-a' was revoked"


def test_two_replicas_admit_exactly_rpm_of_a_concurrent_burst(redis_server: RedisServer) -> None:
    replicas, k = [RedisCounters(redis_server.url), RedisCounters(redis_server.url)], key(rpm=20)
    results = at_once(50, lambda i: replicas[i % 2].admit("h", k, T0 + i / 1000))
    assert sum(r == Admitted() for r in results) == 20
    refused = [r for r in results if isinstance(r, Refused)]
    assert len(refused) == 30 and all(r.field == "rpm" and r.retry_after_s > 0 for r in refused)
    again = at_once(50, lambda i: replicas[i % 2].admit("h", k, T0 + 1 + i / 1000))
    assert not any(r == Admitted() for r in again)  # the window has not slid yet
    later = at_once(50, lambda i: replicas[i % 2].admit("h", k, T0 + 61 + i / 1000))
    assert sum(r == Admitted() for r in later) == 20  # a minute on, the first burst left it


def test_concurrent_charges_on_two_replicas_count_every_token(redis_server: RedisServer) -> None:
    replicas = [RedisCounters(redis_server.url), RedisCounters(redis_server.url)]
    k = key(tpm=400, budget_tokens=390, period="day")
    at_once(39, lambda i: replicas[i % 2].charge("h", k, "m", 6, 4, cached=False, error=False, now=T0 + i / 1000))
    assert replicas[0].spent("h", k, T0) == 390
    budget = replicas[1].admit("h", k, T0 + 1)
    assert isinstance(budget, Refused) and budget.field == "budget_tokens"
    k = key(tpm=400)  # no budget: the minute's 390 tokens are under tpm until 10 more come
    assert replicas[0].admit("h", k, T0 + 1) == Admitted()
    replicas[1].charge("h", k, "m", 10, 0, cached=True, error=False, now=T0 + 2)  # cached: no tokens
    assert replicas[0].admit("h", k, T0 + 2) == Admitted()
    replicas[1].charge("h", k, "m", 10, 0, cached=False, error=False, now=T0 + 2)
    tpm = replicas[0].admit("h", k, T0 + 3)
    assert isinstance(tpm, Refused) and tpm.field == "tpm" and tpm.retry_after_s == pytest.approx(57)
    assert replicas[0].admit("h", k, T0 + 60) == Admitted()
    since = utc(T0)
    rows = replicas[1].usage.report("team-a", since, since + timedelta(hours=1))
    assert [(r.model, r.requests, r.prompt_tokens, r.completion_tokens, r.cache_hits) for r in rows] == \
        [("m", 41, 244, 156, 1)]


def test_when_redis_stops_revoked_keys_stay_out_and_limits_hold_per_replica(redis_server: RedisServer,
                                                                              tmp_path: Path) -> None:
    clock = Clock()
    admin, replica = RedisKeyStore(redis_server.url), RedisKeyStore(redis_server.url, outage=Outage(5, clock))
    seen, _ = admin.create(KeySpec(name="seen"))
    revoked, _ = admin.create(KeySpec(name="revoked"))
    unseen, _ = admin.create(KeySpec(name="unseen"))
    assert replica.by_hash(hash_key(revoked)).refusal(T0) is None  # valid when this replica last read it
    admin.revoke("revoked")
    assert replica.by_hash(hash_key(seen)).refusal(T0) is None  # any read learns of the revocation
    counters = Degrading(RedisCounters(redis_server.url), LocalCounters(tmp_path / "local.db"), Outage(5, clock))
    k = record_of(KeySpec(name="seen", rpm=3))
    assert counters.admit("h", k, T0) == Admitted() and not counters.degraded

    redis_server.stop()
    assert replica.by_hash(hash_key(revoked)).refusal(T0) == "the API key 'revoked' was revoked"
    assert replica.by_hash(hash_key(unseen)) is None
    assert replica.by_hash(hash_key(seen)).refusal(T0) is None and replica.degraded
    with pytest.raises(StoreUnavailable):
        admin.create(KeySpec(name="new"))
    results = [counters.admit("h", k, T0 + 1 + i) for i in range(5)]
    assert counters.degraded and results[:3] == [Admitted()] * 3  # this replica's own count starts afresh
    assert all(isinstance(r, Refused) and r.field == "rpm" for r in results[3:])
    counters.charge("h", k, "m", 1, 1, cached=False, error=False, now=T0 + 6)  # charged locally, not lost

    back = RedisServer(tmp_path, port=redis_server.port)
    try:
        assert isinstance(counters.admit("h", k, T0 + 7), Refused) and counters.degraded  # not asked again yet
        clock.now += 5
        assert counters.admit("h", k, T0 + 7) == Admitted() and not counters.degraded  # Redis counts again
        fresh, _ = admin.create(KeySpec(name="fresh"))
        assert replica.by_hash(hash_key(fresh)).name == "fresh" and not replica.degraded
    finally:
        back.stop()
