"""Loader logic against an in-memory control (the real model-control API is in tests/integration)."""
from __future__ import annotations

import threading
import time

import pytest

from model_router.serving.loader import Limits, LoadError, ModelLoader


class RecordingControl:
    """Keeps a set of loaded models; loads take `load_s` (or, given a `gate`, last until it opens);
    records every call in order, and how many loads ran at once."""

    def __init__(self, load_s: float = 0.0, fail: set[str] | None = None, gate: threading.Event | None = None,
                 stuck: set[str] | None = None) -> None:
        self.loaded: set[str] = set()
        self.loading_elsewhere: set[str] = set()  # Triton says LOADING: someone else's load
        self.stuck = stuck or set()  # models whose unload never finishes (a dead stub)
        self.calls: list[tuple[str, str]] = []
        self.load_s, self.fail, self.gate = load_s, fail or set(), gate
        self.peak_concurrent_loads = 0
        self.loading = 0
        self._lock = threading.Lock()

    def load(self, name: str, config: str | None = None) -> None:
        with self._lock:
            self.calls.append(("load-config" if config else "load", name))
            self.loading += 1
            self.peak_concurrent_loads = max(self.peak_concurrent_loads, self.loading)
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        time.sleep(self.load_s)
        with self._lock:
            self.loading -= 1
            if name in self.fail:
                raise RuntimeError(f"broken weights in {name}")
            self.loaded.add(name)

    def unload(self, name: str) -> None:
        with self._lock:
            self.calls.append(("unload", name))
            if name not in self.stuck:
                self.loaded.discard(name)

    def wait_unloaded(self, name: str, timeout: float) -> None:
        if name in self.stuck:
            raise TimeoutError(f"model {name!r} still not unloaded after {timeout:.0f}s")

    def states(self) -> dict[str, str]:
        return {**{m: "LOADING" for m in self.loading_elsewhere}, **{m: "READY" for m in self.loaded}}


MODELS = {"a": (500.0, 0.0, False), "b": (500.0, 0.0, False), "c": (300.0, 0.0, False), "pin": (200.0, 0.0, True)}


def make(control: RecordingControl, budget: float = 1000.0, **kw) -> ModelLoader:
    """A loader without the anti-thrashing residency, so that LRU order alone decides (test_loader_limits)."""
    return ModelLoader(control, MODELS, budget, **{"limits": Limits(min_residency_s=0), **kw})


def test_loads_on_demand_and_reuses() -> None:
    ctl = RecordingControl()
    loader = make(ctl)
    with loader.acquire("a") as lease:
        assert loader.is_loaded("a")
    with loader.acquire("a") as again:
        assert again.load_s == 0.0
    assert ctl.calls == [("load", "a")]
    assert lease.model == "a"


def test_single_flight_under_concurrency() -> None:
    ctl = RecordingControl(load_s=0.3)
    loader = make(ctl)
    results: list[str] = []

    def worker() -> None:
        with loader.acquire("a") as lease:
            results.append(lease.model)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["a"] * 8
    assert ctl.calls.count(("load", "a")) == 1


def test_a_load_holds_up_neither_other_loads_nor_loaded_models() -> None:
    """Control calls run outside the loader's lock: two models load at once, and a loaded model is
    served while they do."""
    gate = threading.Event()
    ctl = RecordingControl(gate=gate)
    loader = make(ctl, budget=2000.0)
    ctl.loaded.add("c")
    loader.sync()
    loads = [threading.Thread(target=lambda m=m: loader.acquire(m).close()) for m in ("a", "b")]
    for t in loads:
        t.start()
    deadline = time.monotonic() + 10
    while ctl.loading < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    served = threading.Thread(target=lambda: loader.acquire("c").close())
    served.start()
    served.join(10)
    assert not served.is_alive(), "a loaded model waited for other models' loads"
    assert ctl.loading == 2 and ctl.peak_concurrent_loads == 2  # both loads still running, side by side
    gate.set()
    for t in loads:
        t.join(10)
    assert loader.is_loaded("a") and loader.is_loaded("b")


def test_lru_eviction_keeps_budget() -> None:
    ctl = RecordingControl()
    clock = [0.0]
    loader = make(ctl, budget=1000.0, clock=lambda: clock[0])
    for name in ("a", "c"):
        clock[0] += 1
        loader.acquire(name).close()
    clock[0] += 1
    loader.acquire("b").close()  # 500 + 300 + 500 > 1000: evict LRU "a"
    assert ("unload", "a") in ctl.calls and ("unload", "c") not in ctl.calls
    assert loader.used_mb()[0] <= 1000.0


def test_never_evicts_in_flight_or_pinned() -> None:
    ctl = RecordingControl()
    loader = make(ctl, budget=1000.0)
    ctl.loaded.add("pin")
    loader.sync()
    held = loader.acquire("a")  # 200 + 500 in use, "a" in flight
    with pytest.raises(LoadError, match="budget of 1000 MB"):
        loader.acquire("b")
    assert not loader.fits("b")
    held.close()
    assert loader.fits("b")
    loader.acquire("b").close()
    assert ("unload", "a") in ctl.calls and ("unload", "pin") not in ctl.calls


def test_failed_load_is_reported_and_retryable() -> None:
    ctl = RecordingControl(fail={"a"})
    failures: list[str] = []
    from model_router.serving.loader import LoaderEvents

    loader = make(ctl, events=LoaderEvents(load_failed=lambda m, e: failures.append(m)))
    with pytest.raises(LoadError, match="model 'a': load failed: broken weights"):
        loader.acquire("a")
    assert failures == ["a"] and not loader.is_loaded("a")
    ctl.fail.clear()
    loader.acquire("a").close()
    assert loader.is_loaded("a")


def test_idle_unload_skips_pinned_and_busy() -> None:
    ctl = RecordingControl()
    clock = [0.0]
    loader = make(ctl, budget=2000.0, idle_unload_s=10.0, clock=lambda: clock[0])
    ctl.loaded.add("pin")
    loader.sync()
    loader.acquire("a").close()
    busy = loader.acquire("c")
    clock[0] = 11.0
    assert loader.unload_idle() == ["a"]
    assert loader.is_loaded("c") and loader.is_loaded("pin")
    busy.close()


def test_unknown_model_lists_choices() -> None:
    with pytest.raises(LoadError, match="Available: \\['a', 'b', 'c', 'pin'\\]"):
        make(RecordingControl()).acquire("zzz")


def test_sync_follows_loads_and_unloads_made_by_hand() -> None:
    ctl = RecordingControl()
    loader = make(ctl)
    loader.acquire("a").close()
    ctl.loaded.discard("a")  # an operator unloaded it
    ctl.loaded.add("c")      # and loaded another
    loader.sync()
    assert not loader.is_loaded("a") and loader.is_loaded("c")
    loader.acquire("a").close()
    assert ctl.calls.count(("load", "a")) == 2


def test_a_request_cancelled_while_another_loads_its_model_stops_waiting() -> None:
    from model_router.errors import Cancelled

    ctl = RecordingControl(load_s=2.0)
    loader = make(ctl)
    first = threading.Thread(target=lambda: loader.acquire("a").close())
    first.start()
    time.sleep(0.2)  # "a" is loading for the first caller
    started = time.monotonic()
    with pytest.raises(Cancelled, match="while waiting for a to load"):
        loader.acquire("a", timeout=60, cancelled=lambda: time.monotonic() - started > 0.3)
    assert loader._states["a"].status == "loading"  # it gave up while the load was still going
    first.join()
