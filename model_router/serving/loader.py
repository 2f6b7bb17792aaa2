"""Loads models on demand through Triton's model-control API, within a memory budget.

Guarantees, under any number of concurrent callers:
- one load per model at a time; other callers wait for it (single flight);
- before a load, the planner's evictions (planner.py) are carried out; on GPUs, more idle models are
  evicted until NVML's free memory also covers the model;
- a model with requests in flight (an open Lease) is never evicted or idle-unloaded;
- Triton's unload returns before the model is gone: we wait until it is before counting its memory as
  free, and a model whose unload never finishes (its stub died) stays counted;
- the view is Triton's before any decision: models loaded or loading by anyone are counted, and memory
  found over the budget is freed by evicting idle unpinned models.
Control calls run on the caller's thread, outside the lock: a load never stalls traffic to loaded models.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from ..errors import Cancelled, never
from .loader_api import Lease, LoaderEvents, LoadError, ModelControl
from .memory import GpuMemory
from .planner import Budget, Limits, ModelState, ModelStatus, Plan, Planner, in_use
from .rounds import Rounds

__all__ = ["Lease", "Limits", "LoadError", "LoaderEvents", "ModelControl", "ModelLoader", "ModelStatus"]
log = logging.getLogger(__name__)

UNLOADED, LOADING, LOADED, UNLOADING, STUCK = ModelStatus  # noqa: the enum's members, in order


class ModelLoader:
    """The models' states (planner.ModelState) under one lock, the leases on them, and the control calls
    that carry out the planner's decisions."""

    def __init__(self, control: ModelControl, models: dict[str, tuple[float, float, bool]],
                 memory_budget_mb: float, gpu_memory_budget_mb: float = 0.0, gpu: GpuMemory | None = None,
                 idle_unload_s: float = 0.0, unload_timeout_s: float = 120.0, limits: Limits = Limits(),
                 measure: Callable[[str], tuple[float, float]] | None = None,
                 events: LoaderEvents | None = None, clock: Callable[[], float] = time.monotonic,
                 overrides: Callable[[str], tuple[str, dict[str, bytes]] | None] | None = None) -> None:
        """`models`: each manageable model's (memory_mb, gpu_memory_mb, pinned); `measure(name)`: what its
        processes hold (host MB, GPU MB); `overrides(name)`: its (config, files), if any (vLLM's GPU share)."""
        self.control, self.gpu, self.clock, self.measure = control, gpu, clock, measure
        self.overrides = overrides
        self.planner = Planner(Budget(memory_budget_mb, gpu_memory_budget_mb), limits, idle_unload_s)
        self.unload_timeout_s = unload_timeout_s
        self.events = events or LoaderEvents()
        self._states = {n: ModelState(n, m, g, p) for n, (m, g, p) in models.items()}
        self._cond = threading.Condition()
        self._synced = False
        self._reaper: Rounds | None = None

    @property
    def budget_mb(self) -> float:
        return self.planner.budget.host_mb

    @property
    def gpu_budget_mb(self) -> float:
        return self.planner.budget.gpu_mb

    # -- what is there ------------------------------------------------------------------------
    def sync(self) -> None:
        """Match Triton: adopt models loaded (or loading) by others, forget models unloaded by hand.

        Models this loader is loading or unloading, or that settled after the snapshot was taken,
        are left alone: it knows better."""
        taken = self.clock()
        states = self.control.states()
        with self._cond:
            for st in self._states.values():
                if st.settled_at > taken or (st.status in (LOADING, UNLOADING) and not st.external):
                    continue
                was = st.status
                if st.follow(states.get(st.name, ""), self.clock()) is UNLOADED and was is LOADED:
                    log.info("%s was unloaded behind the router's back", st.name)
            self._synced = True
            self._cond.notify_all()

    def used_mb(self) -> tuple[float, float]:
        with self._cond:
            return in_use(self._states.values())

    def is_loaded(self, name: str) -> bool:
        with self._cond:
            st = self._states.get(name)
            return st is not None and st.status is LOADED

    def fits(self, name: str) -> bool:
        return not self.blocker(name)

    def blocker(self, name: str, force: bool = False) -> str:
        """Why `name` could not be loaded now ("" when it can, evicting idle models if need be)."""
        if not self._synced:
            self.sync()
        with self._cond:
            st = self._states[name]
            if st.status is not UNLOADED:
                return "" if st.status is not STUCK else "its last unload never finished (its stub died)"
            return self._plan(st, force).blocker

    def footprints(self) -> dict[str, dict[str, float | str | bool]]:
        """Per model: status, declared and measured memory (for the deep health report and metrics)."""
        with self._cond:
            return {s.name: s.footprint(self.clock()) for s in self._states.values()}

    # -- acquire / release ----------------------------------------------------------------------
    def acquire(self, name: str, timeout: float = 300.0, cancelled: Callable[[], bool] = never,
                force: bool = False) -> Lease:
        """Make sure `name` is loaded and hold it for one request. Raises LoadError, or Cancelled when
        the request is cancelled while it waits for another caller's load. `force` (an admin's
        request) may evict models within their minimum residency and load past the rate limit."""
        if name not in self._states:
            raise LoadError(f"model {name!r} is not managed by the loader. Available: {sorted(self._states)}")
        if not self._synced:
            self.sync()
        deadline = self.clock() + timeout
        with self._cond:
            st = self._states[name]
            while st.status is not UNLOADED:
                if st.status is LOADED:
                    st.inflight, st.last_used = st.inflight + 1, self.clock()
                    return Lease(name, 0.0, self._release)
                if st.status is STUCK:
                    raise LoadError(f"model {name!r}: its last unload never finished (its stub died)")
                # loading or unloading elsewhere: wait for it to settle
                if cancelled():
                    raise Cancelled(f"while waiting for {name} to load")
                left = deadline - self.clock()
                if left <= 0:
                    raise LoadError(f"model {name!r}: still {st.status.value} after {timeout:.0f}s")
                self._cond.wait(min(left, 0.25))
            plan = self._plan(st, force)
            if not plan.ok:
                raise LoadError(plan.blocker)
            self._claim(st, plan.victims)
        return self._load(st, plan.victims)

    def reload(self, name: str, config: str) -> float:
        """Load `name` again with a config override, which makes Triton start fresh instances (how a
        model whose stub died comes back); single flight with every other load. Returns its load time."""
        with self._cond:
            st = self._states[name]
            while st.status in (LOADING, UNLOADING):
                self._cond.wait(0.25)
            victims: tuple[str, ...] = ()
            if st.status is UNLOADED:  # let go meanwhile: it must fit again (a pinned one evicts at once)
                plan = self.planner.plan_evictions(st, self._states.values(), self.clock(), st.pinned)
                if not plan.ok:
                    raise LoadError(plan.blocker)
                victims = plan.victims
            self._claim(st, victims)
        lease = self._load(st, victims, config)
        lease.close()
        return lease.load_s

    def _plan(self, st: ModelState, force: bool) -> Plan:
        return self.planner.plan_load(st, self._states.values(), self.clock(), force)

    def _claim(self, st: ModelState, victims: tuple[str, ...]) -> None:
        """Under the lock: mark `st` loading and its victims unloading, so that no other caller takes them."""
        for v in victims:
            self._states[v].status = UNLOADING
        st.status = LOADING

    def _load(self, st: ModelState, victims: tuple[str, ...], config: str | None = None) -> Lease:
        """Evict `victims`, make room on the GPU, load `st` (claimed by the caller) and lease it."""
        unloaded = 0
        try:
            for unloaded, v in enumerate(victims, 1):
                self._unload(v, "evicted")
            self._ensure_gpu_free(st)
            t0 = self.clock()
            override = self.overrides(st.name) if self.overrides else None  # a recovery's config wins
            self.control.load(st.name, config or override[0], override[1]) if override else \
                self.control.load(st.name, config) if config else self.control.load(st.name)
            load_s = self.clock() - t0
        except Exception as exc:
            with self._cond:
                for v in victims[unloaded:]:  # an unload failed before these: they stay, loaded
                    self._states[v].status = LOADED
                self._settle(st, UNLOADED)
            self.events.load_failed(st.name, str(exc))
            if isinstance(exc, LoadError):
                raise
            raise LoadError(f"model {st.name!r}: load failed: {_first_line(exc)}") from exc
        with self._cond:
            now = self.clock()
            st.external, st.inflight, st.last_load_s = False, st.inflight + 1, load_s
            st.last_used = st.loaded_at = now
            st.load_times = [t for t in st.load_times if now - t < self.planner.limits.load_window_s] + [now]
            self._settle(st, LOADED)
        self.events.loaded(st.name, load_s)
        self._measure(st)
        log.info("loaded %s in %.2fs (evicted %s)", st.name, load_s, list(victims) or "nothing")
        return Lease(st.name, load_s, self._release)

    def _settle(self, st: ModelState, status: ModelStatus) -> None:
        with self._cond:
            st.status, st.settled_at = status, self.clock()
            self._cond.notify_all()

    def _release(self, name: str) -> None:
        with self._cond:
            st = self._states[name]
            st.inflight, st.last_used = st.inflight - 1, self.clock()
            self._cond.notify_all()

    # -- what a model takes ---------------------------------------------------------------------
    def _measure(self, st: ModelState) -> None:
        """Remember the most this model's processes were seen holding (it stays counted after unloads)."""
        if self.measure is None:
            return
        try:
            host, gpu = self.measure(st.name)
        except Exception as exc:  # a measurement is advice: the declared figure still stands
            log.warning("could not measure %s: %s", st.name, exc)
            return
        with self._cond:
            st.measured_mb, st.measured_gpu_mb = max(st.measured_mb, host), max(st.measured_gpu_mb, gpu)
        self.events.measured(st.name, st.measured_mb, st.measured_gpu_mb)

    # -- eviction -------------------------------------------------------------------------------
    def _ensure_gpu_free(self, st: ModelState) -> None:
        """On GPUs the budget is also what NVML says is free: evict more idle models until it is."""
        if self.gpu is None or st.gpu_mb <= 0:
            return
        while self.gpu.free_mb() < st.gpu_mb:
            if not (victim := self._claim_victim(self.planner.gpu_victim)):
                raise LoadError(f"model {st.name!r} needs {st.gpu_mb:.0f} MB of GPU memory; "
                                f"NVML reports {self.gpu.free_mb():.0f} MB free and nothing idle to evict")
            self._unload(victim, "gpu-memory")

    def _claim_victim(self, choose: Callable[[list[ModelState]], str | None]) -> str | None:
        """Under the lock, the model `choose` picks among the states, marked unloading."""
        with self._cond:
            victim = choose(list(self._states.values()))
            if victim:
                self._states[victim].status = UNLOADING
            return victim

    def _unload(self, name: str, reason: str) -> None:
        """Unload (claimed by the caller) and wait until Triton has let go; an unload that never finishes
        leaves it stuck (its memory still counted, never chosen again) until Triton's index says it is gone."""
        status = UNLOADED
        try:
            self.control.unload(name)
            self.control.wait_unloaded(name, self.unload_timeout_s)
        except Exception:
            status = STUCK
            raise
        finally:
            self._settle(self._states[name], status)
        self.events.evicted(name, reason)
        log.info("unloaded %s (%s)", name, reason)

    def enforce_budget(self) -> list[str]:
        """Evict idle unpinned models (LRU first) while the memory in use is over the budget."""
        evicted = []
        while victim := self._claim_victim(self.planner.over_budget_victim):
            log.warning("memory in use (%.0f MB) is over the budget (%.0f MB): evicting %s", self.used_mb()[0],
                        self.budget_mb, victim)
            self._unload(victim, "over-budget")
            evicted.append(victim)
        return evicted

    # -- upkeep -----------------------------------------------------------------------------------
    def unload_idle(self) -> list[str]:
        """Unload every unpinned model idle for longer than idle_unload_s; returns their names."""
        with self._cond:
            idle = self.planner.idle_expired(self._states.values(), self.clock())
            for name in idle:
                self._states[name].status = UNLOADING
        for name in idle:
            self._unload(name, "idle")
        return idle

    def upkeep(self) -> None:
        """One round: follow Triton, keep to the budget, unload idle models, measure the loaded ones."""
        self.sync()
        self.enforce_budget()
        self.unload_idle()
        with self._cond:
            loaded = [s for s in self._states.values() if s.status is LOADED]
        for st in loaded:
            self._measure(st)

    def start_reaper(self, every_s: float = 1.0, extra: Callable[[], None] = lambda: None) -> None:
        """Upkeep every `every_s` on a thread of its own (with `extra`, e.g. the health watcher's round)."""
        self._reaper = Rounds((self.upkeep, extra), every_s, "loader-upkeep")

    def stop(self) -> None:
        if self._reaper:
            self._reaper.stop()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
