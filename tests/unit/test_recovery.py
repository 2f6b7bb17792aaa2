"""The health watcher: a dead stub is noticed, its model reloaded with a config override, with backoff."""
from __future__ import annotations

from model_router.serving.loader import Limits, ModelLoader
from model_router.serving.recovery import Recovery, RecoveryEvents

from .test_loader import RecordingControl
from .test_loader_limits import MODELS, Clock


def make(backoff=(0.0, 30.0), triton: dict[str, str] | None = None):
    ctl = RecordingControl()
    clock = Clock()
    loader = ModelLoader(ctl, MODELS, 2000, clock=clock, limits=Limits(min_residency_s=0))
    stubs = {"a": [101]}
    results: list[tuple[str, str]] = []
    rec = Recovery(loader, lambda: {m: list(p) for m, p in stubs.items()}, lambda m: '{"name": "%s"}' % m,
                   backoff_s=backoff, stable_s=120, events=RecoveryEvents(lambda m, r: results.append((m, r))),
                   clock=clock, triton_states=None if triton is None else lambda: dict(triton))
    loader.acquire("a").close()
    rec.check()  # learns a's stub
    return ctl, clock, loader, stubs, rec, results


def settle(rec: Recovery) -> None:
    import threading
    import time
    rec.check()
    for t in threading.enumerate():
        if t.name.startswith("recover-"):
            t.join(5)
    time.sleep(0.01)


def test_a_dead_stub_is_reloaded_with_a_config_override() -> None:
    ctl, clock, loader, stubs, rec, results = make(backoff=(5.0, 30.0))
    stubs["a"] = []  # SIGKILLed
    rec.check()
    assert "recovering" in rec.recovering("a") and ("load-config", "a") not in ctl.calls
    clock.now += 6
    stubs["a"] = [102]  # Triton starts a fresh instance on the config-override load
    settle(rec)
    assert ("load-config", "a") in ctl.calls and results == [("a", "ok")]
    assert rec.recovering("a") == "" and loader.is_loaded("a")


def test_dying_again_soon_backs_off_and_says_so() -> None:
    ctl, clock, loader, stubs, rec, results = make()
    stubs["a"] = []
    rec.check()
    stubs["a"] = [102]
    settle(rec)
    clock.now += 10
    stubs["a"] = []  # dead again, 10 s after coming back
    settle(rec)
    assert "next reload in 30 s" in rec.recovering("a") and results == [("a", "ok")]
    clock.now += 31
    stubs["a"] = [103]
    settle(rec)
    assert results == [("a", "ok"), ("a", "ok")] and rec.recovering("a") == ""
    assert rec.report()["a"]["deaths"] == 2


def test_an_unhealthy_stub_error_marks_the_model_dead_at_once() -> None:
    ctl, clock, loader, stubs, rec, results = make(backoff=(5.0,))
    rec.suspect("a", "Stub process 'a_0_0' is not healthy.")
    assert "recovering" in rec.recovering("a")
    rec.suspect("b", "no complete answer within 5 s")  # b is not loaded: a timeout alone proves nothing
    assert rec.recovering("b") == ""


def test_a_model_someone_else_unloads_is_not_taken_for_dead() -> None:
    triton = {"a": "READY"}
    # A backoff, so that the death below is still being recovered when the test looks (with 0 s the
    # reload could be over first).
    ctl, clock, loader, stubs, rec, results = make(backoff=(5.0, 30.0), triton=triton)
    triton["a"] = "UNLOADING"  # an admin's unload: its stub exits before the loader hears of it
    stubs["a"] = []
    settle(rec)
    assert rec.recovering("a") == "" and results == [] and ("load-config", "a") not in ctl.calls
    triton["a"], stubs["a"] = "READY", [105]  # loaded again; then its stub is killed
    rec.check()
    stubs["a"] = []
    rec.check()
    assert "recovering" in rec.recovering("a")


def test_a_stub_left_over_from_a_reload_is_not_a_death_when_it_goes() -> None:
    ctl, clock, loader, stubs, rec, results = make()
    stubs["a"] = [101, 102]  # a reload: the old stub still exiting beside the new one
    rec.check()
    stubs["a"] = [102]  # the old one gone: the model's one instance is alive
    settle(rec)
    assert rec.recovering("a") == "" and results == []
    stubs["a"] = []  # its one stub gone: that is a death, and the model is reloaded
    settle(rec)
    assert ("load-config", "a") in ctl.calls and results == [("a", "ok")]
