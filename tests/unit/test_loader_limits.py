"""The loader's budget on what models really take, its view of Triton, and the anti-thrashing rules
(an in-memory model control and clock; the real model-control API is in tests/integration)."""
from __future__ import annotations

import pytest

from model_router.serving.loader import Limits, LoadError, ModelLoader

from .test_loader import RecordingControl

MODELS = {"a": (500.0, 0.0, False), "b": (500.0, 0.0, False), "pin": (200.0, 0.0, True)}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(ctl: RecordingControl, budget: float = 800.0, **kw) -> tuple[ModelLoader, Clock]:
    clock = Clock()
    return ModelLoader(ctl, MODELS, budget, clock=clock, **kw), clock


def test_a_model_stays_its_minimum_residency_then_may_be_evicted() -> None:
    ctl = RecordingControl()
    loader, clock = make(ctl, limits=Limits(min_residency_s=60))
    loader.acquire("a").close()
    clock.now += 10
    assert "minimum residency" in loader.blocker("b")
    with pytest.raises(LoadError, match=r"would evict a \(loaded 10 s ago; minimum residency 60 s\)"):
        loader.acquire("b")
    assert ("unload", "a") not in ctl.calls and loader.is_loaded("a")
    loader.acquire("b", force=True).close()  # an admin may switch at once
    assert ("unload", "a") in ctl.calls and loader.is_loaded("b")
    clock.now += 61
    loader.acquire("a").close()  # b's residency is over: a switch per residency
    assert not loader.is_loaded("b")


def test_loads_of_a_model_are_rate_limited() -> None:
    ctl = RecordingControl()
    loader, clock = make(ctl, budget=2000, limits=Limits(min_residency_s=0, max_loads=2, load_window_s=100))
    for _ in range(2):
        loader.acquire("a").close()
        ctl.loaded.discard("a")  # unloaded by hand
        loader.sync()
        clock.now += 1
    with pytest.raises(LoadError, match="loaded 2 times in the last 100 s"):
        loader.acquire("a")
    clock.now += 100
    loader.acquire("a").close()


def test_measured_memory_counts_when_larger_than_declared_and_is_remembered() -> None:
    ctl = RecordingControl()
    measured = {"a": 700.0}
    loader, clock = make(ctl, budget=850, measure=lambda m: (measured.get(m, 10.0), 0.0),
                         limits=Limits(min_residency_s=0))
    loader.acquire("a").close()
    assert loader.used_mb()[0] == 700.0 and loader.footprints()["a"]["measured_mb"] == 700.0  # not its 500
    ctl.loaded.discard("a")  # unloaded by hand
    loader.sync()
    measured["a"] = 100.0  # a later, smaller reading does not lower what it was seen to need
    loader.acquire("pin").close()  # 200, never evicted
    assert loader.blocker("a").startswith("model 'a' needs 700 MB")  # 200 + 700 > 850; declared 500 would fit


def test_models_loaded_or_loading_by_others_count_before_the_first_decision() -> None:
    ctl = RecordingControl()
    ctl.loading_elsewhere.add("a")  # the launcher's load, still under way
    loader, _ = make(ctl, budget=800, limits=Limits(min_residency_s=0))
    assert loader.blocker("b") != ""  # a (500, loading) + b (500) > 800: b must wait, not load beside it
    ctl.loading_elsewhere.discard("a")
    ctl.loaded.add("a")
    loader.sync()
    assert loader.is_loaded("a")


def test_over_the_budget_idle_models_are_evicted_until_it_holds() -> None:
    ctl = RecordingControl()
    ctl.loaded |= {"a", "b"}  # loaded by hand: 1000 > 800
    loader, _ = make(ctl, limits=Limits(min_residency_s=600))
    loader.upkeep()
    assert len({"a", "b"} & ctl.loaded) == 1 and loader.used_mb()[0] <= 800


def test_an_unload_that_never_finishes_keeps_the_memory_counted() -> None:
    ctl = RecordingControl(stuck={"a"})
    loader, clock = make(ctl, limits=Limits(min_residency_s=0))
    loader.acquire("a").close()
    with pytest.raises(Exception, match="still not unloaded"):
        loader.acquire("b")  # evicting a times out: its stub is dead
    assert loader.footprints()["a"]["status"] == "stuck"
    assert loader.used_mb()[0] == 500.0  # Triton still holds it
    assert "never finished" in loader.blocker("a") and loader.blocker("b") != ""


def test_when_an_eviction_never_finishes_the_victims_after_it_stay_loaded() -> None:
    ctl = RecordingControl(stuck={"a"})
    models = {"a": (500.0, 0.0, False), "c": (300.0, 0.0, False), "b": (800.0, 0.0, False)}
    clock = Clock()
    loader = ModelLoader(ctl, models, 1000, clock=clock, limits=Limits(min_residency_s=0))
    for name in ("a", "c"):  # a least recently used
        loader.acquire(name).close()
        clock.now += 1
    with pytest.raises(LoadError, match="still not unloaded"):
        loader.acquire("b")  # 800 + 800: both a and c must go, and a's unload never finishes
    assert ("unload", "c") not in ctl.calls
    assert loader.footprints()["c"]["status"] == "loaded"
    assert loader.acquire("c").load_s == 0.0  # served as it is, not reloaded
