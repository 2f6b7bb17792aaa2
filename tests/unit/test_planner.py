"""The eviction planner on its own: states, budget and time in, a plan out (no control, no threads)."""
from __future__ import annotations

import pytest

from model_router.serving.planner import Budget, Limits, ModelState, ModelStatus, Planner, in_use

LOADED, LOADING, UNLOADED = ModelStatus.LOADED, ModelStatus.LOADING, ModelStatus.UNLOADED
NOW = 10_000.0
NO_RESIDENCY = Limits(min_residency_s=0)


def model(name: str, mb: float, status: ModelStatus = LOADED, used: float = 0.0, loaded: float = 0.0,
          **kw) -> ModelState:
    """A model of `mb` MB, last used `used` s and loaded `loaded` s after NOW - 1000."""
    return ModelState(name, mb, kw.pop("gpu_mb", 0.0), kw.pop("pinned", False), status=status,
                      last_used=NOW - 1000 + used, loaded_at=NOW - 1000 + loaded, **kw)


def test_evicts_the_least_recently_used_idle_models_until_the_new_one_fits() -> None:
    states = [model("old", 300, used=1), model("mid", 300, used=2), model("new", 300, used=3),
              model("x", 500, UNLOADED)]
    plan = Planner(Budget(1000), NO_RESIDENCY).plan_load(states[-1], states, NOW)
    assert plan.ok and plan.victims == ("old", "mid")  # 900 + 500 -> 600 + 500 -> 300 + 500


def test_nothing_is_evicted_when_the_model_fits() -> None:
    states = [model("a", 300), model("x", 500, UNLOADED)]
    assert Planner(Budget(1000)).plan_load(states[-1], states, NOW).victims == ()


@pytest.mark.parametrize("held", [dict(inflight=1), dict(pinned=True), dict(status=LOADING),
                                  dict(status=ModelStatus.UNLOADING), dict(status=ModelStatus.STUCK)])
def test_models_in_use_pinned_or_in_transit_are_never_evicted_and_are_named(held: dict) -> None:
    states = [model("held", 600, **held), model("x", 500, UNLOADED)]
    plan = Planner(Budget(1000), NO_RESIDENCY).plan_load(states[-1], states, NOW, force=True)
    assert not plan.ok and plan.victims == ()
    assert plan.blocker == ("model 'x' needs 500 MB (GPU 0 MB) but the memory budget of 1000 MB (GPU 0 MB) is "
                            "held by ['held'], which are pinned, busy or loading")


def test_a_model_within_its_minimum_residency_stays_unless_forced_or_for_a_pinned_one() -> None:
    states = [model("a", 600, loaded=990), model("x", 500, UNLOADED)]  # loaded 10 s ago
    planner = Planner(Budget(1000), Limits(min_residency_s=60))
    plan = planner.plan_load(states[-1], states, NOW)
    assert plan.blocker == "model 'x' would evict a (loaded 10 s ago; minimum residency 60 s)"
    assert planner.plan_load(states[-1], states, NOW, force=True).victims == ("a",)
    assert planner.plan_load(states[-1], states, NOW + 50).victims == ("a",)  # 60 s on
    pinned = model("p", 500, UNLOADED, pinned=True)
    assert planner.plan_load(pinned, [states[0], pinned], NOW).victims == ("a",)


def test_loads_past_the_rate_limit_are_refused_unless_forced_or_pinned() -> None:
    planner = Planner(Budget(1000), Limits(max_loads=2, load_window_s=100))
    x = model("x", 100, UNLOADED, load_times=[NOW - 150, NOW - 90, NOW - 10])  # two within the window
    assert planner.plan_load(x, [x], NOW).blocker == "model 'x' was loaded 2 times in the last 100 s (the limit)"
    assert planner.plan_load(x, [x], NOW, force=True).ok
    assert planner.plan_load(x, [x], NOW + 11).ok  # the one 90 s ago left the window
    x.pinned = True
    assert planner.plan_load(x, [x], NOW).ok
    assert planner.plan_evictions(model("y", 100, UNLOADED, load_times=[NOW] * 5), [x], NOW).ok  # no rate check


def test_a_models_memory_is_the_larger_of_declared_and_measured() -> None:
    bigger = model("a", 300, measured_mb=700)
    smaller = model("b", 300, measured_mb=100, used=5)
    assert in_use([bigger, smaller, model("c", 999, UNLOADED)]) == (1000, 0)
    x = model("x", 100, UNLOADED, measured_mb=250)
    assert Planner(Budget(1200), NO_RESIDENCY).plan_load(x, [bigger, smaller, x], NOW).victims == ("a",)


def test_a_gpu_budget_binds_only_when_set() -> None:
    states = [model("a", 100, gpu_mb=6000), model("x", 100, UNLOADED, gpu_mb=6000)]
    assert Planner(Budget(1000), NO_RESIDENCY).plan_load(states[-1], states, NOW).victims == ()
    assert Planner(Budget(1000, 10_000), NO_RESIDENCY).plan_load(states[-1], states, NOW).victims == ("a",)


def test_over_the_budget_the_least_recently_used_idle_model_goes_first() -> None:
    planner = Planner(Budget(1000))
    states = [model("a", 600, used=5), model("b", 600, used=1), model("p", 100, pinned=True, used=0)]
    assert planner.over_budget_victim(states) == "b"
    assert planner.over_budget_victim(states[:1]) is None  # within the budget
    assert planner.over_budget_victim([model("a", 2000, inflight=1)]) is None  # over, but nothing idle


def test_idle_models_expire_after_idle_unload_s_and_never_when_it_is_zero() -> None:
    states = [model("a", 1, used=980), model("b", 1, used=995), model("c", 1, used=900, inflight=1)]
    assert Planner(Budget(1000), idle_unload_s=10).idle_expired(states, NOW) == ["a"]
    assert Planner(Budget(1000)).idle_expired(states, NOW) == []


def test_the_gpu_victim_is_the_least_recently_used_idle_model_on_the_gpu() -> None:
    states = [model("cpu", 1, used=0), model("g1", 1, used=2, gpu_mb=10), model("g2", 1, used=1, gpu_mb=10),
              model("busy", 1, used=0, gpu_mb=10, inflight=1)]
    assert Planner.gpu_victim(states) == "g2"
    assert Planner.gpu_victim(states[:1]) is None


@pytest.mark.parametrize("status, inflight, triton, after", [
    (UNLOADED, 0, "READY", LOADED),          # loaded by someone else: adopted
    (LOADING, 0, "READY", LOADED),           # someone else's load finished
    (UNLOADED, 0, "LOADING", LOADING),       # someone else's load: counted
    (LOADED, 0, "UNAVAILABLE", UNLOADED),    # unloaded by hand
    (LOADED, 0, "", UNLOADED),               # gone from the index
    (ModelStatus.STUCK, 0, "UNAVAILABLE", UNLOADED),  # Triton let go at last
    (LOADED, 1, "UNAVAILABLE", None),        # a request holds it: the failure will tell
    (LOADED, 0, "UNLOADING", None),
    (LOADED, 0, "READY", None),
])
def test_following_triton(status: ModelStatus, inflight: int, triton: str, after: ModelStatus | None) -> None:
    st = model("a", 1, status, inflight=inflight)
    assert st.follow(triton, NOW) is after
    assert st.status is (after or status)
    assert st.external == (after is LOADING)
    if after is LOADED:
        assert st.loaded_at == st.last_used == NOW
