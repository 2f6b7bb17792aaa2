"""Tenant keys, limits and usage in the embedded SQLite file (openai_front.tenants), seen from outside:
the file's bytes, the records read back, admissions at an injected clock (nobody sleeps)."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pytest
from pydantic import ValidationError

from openai_front.tenants import (Admitted, KeyExists, KeyFields, KeySpec, LocalCounters, Refused, SqliteKeyStore,
                                  TenantKey, UnknownKey, hash_key)
from openai_front.tenants.keys import record_of

T0 = datetime(2025, 6, 14, 12, 0, 30, tzinfo=timezone.utc).timestamp()  # mid-day, mid-month


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def key(**limits: object) -> TenantKey:
    return record_of(KeySpec(name="team-a", **limits))


def at_once(n: int, work: Callable[[int], object]) -> list[object]:
    """`work(i)` on n threads released together; their results in order."""
    results: list[object] = [None] * n
    start = threading.Barrier(n)

    def run(i: int) -> None:
        start.wait()
        results[i] = work(i)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_keys_are_stored_only_hashed(tmp_path: Path) -> None:
    store = SqliteKeyStore(tmp_path / "tenants.db")
    plain, record = store.create(KeySpec(name="team-a", rpm=5))
    assert plain.startswith("tmr-") and len(plain) > 40
    store.close()
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # the file and its WAL
    assert plain.encode() not in on_disk and plain.removeprefix("tmr-").encode() not in on_disk
    assert hash_key(plain).encode() in on_disk and b"team-a" in on_disk
    again = SqliteKeyStore(tmp_path / "tenants.db")
    assert again.by_hash(hash_key(plain)) == record
    assert again.by_hash(plain) is None and again.by_hash(hash_key(plain + "x")) is None


def test_keys_are_created_listed_changed_and_revoked(tmp_path: Path) -> None:
    store = SqliteKeyStore(tmp_path / "tenants.db")
    plain_a, _ = store.create(KeySpec(name="a", models=["smollm2", "smollm2"], rpm=5, tpm=100, period="day"))
    plain_b, _ = store.create(KeySpec(name="b", use_cases=["agent"], prefer="cost"))
    assert plain_a != plain_b
    with pytest.raises(KeyExists):
        store.create(KeySpec(name="a"))
    assert [k.name for k in store.list()] == ["a", "b"]
    changed = store.update("a", KeyFields.model_validate({"rpm": None, "budget_tokens": 1000}))
    assert (changed.rpm, changed.budget_tokens, changed.tpm, changed.models, changed.period) == \
        (None, 1000, 100, ["smollm2"], "day")  # only the fields sent change
    assert store.by_hash(hash_key(plain_a)) == changed
    with pytest.raises(UnknownKey):
        store.update("nobody", KeyFields(rpm=1))
    with pytest.raises(UnknownKey):
        store.revoke("nobody")
    revoked = store.revoke("b")
    assert revoked.revoked and store.by_hash(hash_key(plain_b)).refusal(T0) == "the API key 'b' was revoked"
    store.close()
    reopened = SqliteKeyStore(tmp_path / "tenants.db")
    assert [(k.name, k.revoked, k.budget_tokens) for k in reopened.list()] == [("a", False, 1000), ("b", True, None)]
    with pytest.raises(KeyExists):  # a revoked key's name is not given again
        reopened.create(KeySpec(name="b"))


def test_a_key_expires_at_its_time_and_a_zoneless_time_is_utc() -> None:
    expiring = key(expires_at="2025-06-14T13:00:00")
    assert expiring.expires_at == datetime(2025, 6, 14, 13, tzinfo=timezone.utc)
    assert expiring.refusal(expiring.expires_at.timestamp() - 1) is None
    assert "expired" in expiring.refusal(expiring.expires_at.timestamp())
    assert key().refusal(T0 + 10 * 365 * 86400) is None


@pytest.mark.parametrize("body, field", [
    ({"name": "has space"}, "name"), ({"name": "x" * 65}, "name"), ({"name": ""}, "name"), ({}, "name"),
    ({"name": "a", "rpm": 0}, "rpm"), ({"name": "a", "tpm": -1}, "tpm"),
    ({"name": "a", "budget_tokens": 0}, "budget_tokens"),
    ({"name": "a", "use_cases": ["poetry"]}, "use_cases"), ({"name": "a", "models": []}, "models"),
    ({"name": "a", "period": "week"}, "period"), ({"name": "a", "prefer": "fastest"}, "prefer"),
    ({"name": "a", "owner": "x"}, "owner"),
])
def test_a_bad_key_body_names_its_field(body: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        KeySpec.model_validate(body)
    assert info.value.errors()[0]["loc"][0] == field


def test_rpm_is_a_sliding_window(tmp_path: Path) -> None:
    counters, k = LocalCounters(tmp_path / "t.db"), key(rpm=3)
    assert [counters.admit("h", k, T0 + s) for s in (0, 10, 20)] == [Admitted()] * 3
    late = counters.admit("h", k, T0 + 30)
    assert isinstance(late, Refused) and late.field == "rpm" and late.retry_after_s == pytest.approx(30)
    assert "rpm" in late.reason and "3 requests per minute" in late.reason
    assert counters.admit("h", k, T0 + 60) == Admitted()  # the admission at T0 left the window
    assert counters.admit("h", k, T0 + 61).retry_after_s == pytest.approx(9)  # 10, 20 and 60 are in it
    assert counters.admit("other", k, T0 + 61) == Admitted()  # each key has its own window


def test_rpm_admits_exactly_its_limit_of_a_concurrent_burst(tmp_path: Path) -> None:
    counters, k = LocalCounters(tmp_path / "t.db"), key(rpm=20)
    results = at_once(50, lambda i: counters.admit("h", k, T0 + i / 1000))
    assert sum(r == Admitted() for r in results) == 20
    assert all(r.field == "rpm" and r.retry_after_s > 0 for r in results if isinstance(r, Refused))


def test_tpm_counts_the_tokens_of_the_last_minute(tmp_path: Path) -> None:
    counters, k = LocalCounters(tmp_path / "t.db"), key(tpm=100)
    counters.charge("h", k, "m", 40, 20, cached=False, error=False, now=T0)
    assert counters.admit("h", k, T0 + 5) == Admitted()
    counters.charge("h", k, "m", 30, 20, cached=False, error=False, now=T0 + 10)
    over = counters.admit("h", k, T0 + 20)
    assert isinstance(over, Refused) and over.field == "tpm" and over.retry_after_s == pytest.approx(40)
    assert isinstance(counters.admit("h", k, T0 + 59), Refused)
    assert counters.admit("h", k, T0 + 60) == Admitted()  # T0's 60 tokens left the window


def test_concurrent_charges_are_all_counted_and_the_budget_stops_the_key(tmp_path: Path) -> None:
    counters, k = LocalCounters(tmp_path / "t.db"), key(budget_tokens=200, period="day")
    at_once(19, lambda i: counters.charge("h", k, "m", 6, 4, cached=False, error=False, now=T0 + i / 1000))
    assert counters.admit("h", k, T0 + 1) == Admitted()  # 190 spent: under the budget
    at_once(2, lambda i: counters.charge("h", k, "m", 6, 4, cached=False, error=False, now=T0 + 1))
    spent = counters.admit("h", k, T0 + 2)  # 210: the last admitted request overspent it, and nothing more gets in
    assert isinstance(spent, Refused) and spent.field == "budget_tokens"
    assert spent.retry_after_s == pytest.approx(12 * 3600 - 32)  # at midnight, UTC
    assert "200 tokens per day" in spent.reason
    assert counters.admit("h", k, T0 + 12 * 3600) == Admitted()  # a new day
    rows = counters.usage.report("team-a", utc(T0), utc(T0 + 60))
    assert [(r.model, r.requests, r.prompt_tokens, r.completion_tokens) for r in rows] == [("m", 21, 126, 84)]


def test_a_monthly_budget_lasts_the_month(tmp_path: Path) -> None:
    counters, k = LocalCounters(tmp_path / "t.db"), key(budget_tokens=50)
    counters.charge("h", k, "m", 50, 0, cached=False, error=False, now=T0)
    assert isinstance(counters.admit("h", k, T0 + 3 * 86400), Refused)
    july = datetime(2025, 7, 1, tzinfo=timezone.utc).timestamp()
    assert counters.admit("h", k, july - 1).retry_after_s == pytest.approx(1)
    assert counters.admit("h", k, july) == Admitted()


def test_a_cached_answer_costs_no_tokens_and_counts_as_a_hit(tmp_path: Path) -> None:
    counters, k = LocalCounters(tmp_path / "t.db"), key(budget_tokens=10, tpm=10)
    counters.charge("h", k, "m", 100, 100, cached=True, error=False, now=T0)
    counters.charge("h", k, None, 0, 0, cached=False, error=True, now=T0)
    assert counters.admit("h", k, T0 + 1) == Admitted()
    rows = counters.usage.report(None, utc(T0 - 3600), utc(T0))
    assert [(r.model, r.requests, r.prompt_tokens, r.cache_hits, r.errors) for r in rows] == \
        [(None, 1, 0, 0, 1), ("m", 1, 0, 1, 0)]


def test_the_counters_are_kept_across_a_restart(tmp_path: Path) -> None:
    counters, k = LocalCounters(tmp_path / "t.db"), key(rpm=2, budget_tokens=100)
    assert [counters.admit("h", k, T0), counters.admit("h", k, T0 + 1)] == [Admitted()] * 2
    counters.charge("h", k, "m", 100, 0, cached=False, error=False, now=T0 + 2)
    counters.close()
    reopened = LocalCounters(tmp_path / "t.db")
    refused = reopened.admit("h", k, T0 + 30)
    assert isinstance(refused, Refused) and refused.field == "budget_tokens"
    assert reopened.admit("h", key(rpm=2), T0 + 30).field == "rpm"
    day = utc(T0)
    assert reopened.usage.report("team-a", day, day + timedelta(hours=1))[0].prompt_tokens == 100


def test_usage_is_hourly_per_key_and_model_and_kept_30_days(tmp_path: Path) -> None:
    counters = LocalCounters(tmp_path / "t.db")
    a, b = key(), record_of(KeySpec(name="team-b"))
    for when, who, model in [(T0, a, "m1"), (T0 + 60, a, "m1"), (T0, a, "m2"), (T0 + 3600, a, "m1"), (T0, b, "m1")]:
        counters.charge("h", who, model, 3, 2, cached=False, error=False, now=when)
    since = utc(T0 - 60)
    rows = counters.usage.report("team-a", since, since + timedelta(hours=3))
    assert [(r.hour.hour, r.model, r.requests, r.prompt_tokens, r.completion_tokens) for r in rows] == \
        [(12, "m1", 2, 6, 4), (12, "m2", 1, 3, 2), (13, "m1", 1, 3, 2)]
    assert {r.name for r in counters.usage.report(None, since, since + timedelta(hours=3))} == {"team-a", "team-b"}
    assert counters.usage.report("team-a", since + timedelta(hours=3), since + timedelta(hours=5)) == []
    counters.charge("h", a, "m1", 1, 1, cached=False, error=False, now=T0 + 31 * 86400)
    assert counters.usage.report(None, since, since + timedelta(hours=3)) == []  # rows a month old are gone
    assert [r.hour.day for r in counters.usage.report(None, since, since + timedelta(days=32))] == [15]
