"""Loads models on demand through Triton's model-control API, within a memory budget.

Guarantees, under any number of concurrent callers:
- one load per model at a time; other callers wait for it (single flight);
- before a load, least-recently-used idle, unpinned models are evicted until the declared
  memory of everything loaded, loading or still unloading fits the budget, so the budget is
  never exceeded; on GPUs, NVML's free memory must also cover the model;
- a model with requests in flight (an open Lease) is never evicted or idle-unloaded;
- Triton's unload returns before the model is gone: we wait until it is before counting the
  memory as free.
The control calls run on the caller's thread, outside the lock: a load never stalls traffic
to models that are already loaded.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from ..errors import ServingError
from .memory import GpuMemory

log = logging.getLogger(__name__)


class ModelControl(Protocol):
    """Triton's model-control API (see triton.control.TritonModelControl)."""

    def load(self, name: str) -> None: ...
    def unload(self, name: str) -> None: ...
    def wait_unloaded(self, name: str, timeout: float) -> None: ...
    def ready_models(self) -> set[str]: ...


class LoadError(ServingError):
    """A model could not be loaded (the load failed, or it does not fit the budget)."""


@dataclass
class _State:
    name: str
    memory_mb: float
    gpu_memory_mb: float
    pinned: bool
    status: str = "unloaded"  # unloaded | loading | loaded | unloading
    inflight: int = 0
    last_used: float = 0.0
    loads: int = 0
    last_load_s: float = 0.0
    settled_at: float = 0.0  # when it last became loaded or unloaded


@dataclass
class Lease:
    """A model held for one request; closing it lets the model be evicted again."""

    model: str
    load_s: float
    _release: Callable[[str], None] = field(repr=False)
    _open: bool = True

    def close(self) -> None:
        if self._open:
            self._open = False
            self._release(self.model)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class LoaderEvents:
    """Hooks for metrics; each defaults to doing nothing."""

    loaded: Callable[[str, float], None] = lambda model, seconds: None
    load_failed: Callable[[str, str], None] = lambda model, error: None
    evicted: Callable[[str, str], None] = lambda model, reason: None


class ModelLoader:
    def __init__(self, control: ModelControl, models: dict[str, tuple[float, float, bool]],
                 memory_budget_mb: float, gpu_memory_budget_mb: float = 0.0, gpu: GpuMemory | None = None,
                 idle_unload_s: float = 0.0, unload_timeout_s: float = 120.0,
                 events: LoaderEvents | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        """`models` maps each manageable model to (memory_mb, gpu_memory_mb, pinned)."""
        self.control, self.gpu, self.clock = control, gpu, clock
        self.budget_mb, self.gpu_budget_mb = memory_budget_mb, gpu_memory_budget_mb
        self.idle_unload_s, self.unload_timeout_s = idle_unload_s, unload_timeout_s
        self.events = events or LoaderEvents()
        self._states = {n: _State(n, m, g, p) for n, (m, g, p) in models.items()}
        self._cond = threading.Condition()
        self._synced = False
        self._reaper: threading.Thread | None = None
        self._stop = threading.Event()

    # -- what is there ------------------------------------------------------------------------
    def sync(self) -> None:
        """Match Triton: adopt models loaded by hand, forget models unloaded by hand.

        Models this loader is loading or unloading, or that settled after the snapshot was taken,
        are left alone: it knows better."""
        taken = self.clock()
        ready = self.control.ready_models()
        with self._cond:
            for st in self._states.values():
                if st.settled_at > taken:
                    continue
                if st.status == "unloaded" and st.name in ready:
                    st.status, st.last_used = "loaded", self.clock()
                elif st.status == "loaded" and st.name not in ready and st.inflight == 0:
                    st.status = "unloaded"
                    log.info("%s was unloaded behind the router's back", st.name)
            self._synced = True
            self._cond.notify_all()

    def used_mb(self) -> tuple[float, float]:
        with self._cond:
            return self._used()

    def _used(self) -> tuple[float, float]:
        live = [s for s in self._states.values() if s.status != "unloaded"]
        return sum(s.memory_mb for s in live), sum(s.gpu_memory_mb for s in live)

    def is_loaded(self, name: str) -> bool:
        with self._cond:
            st = self._states.get(name)
            return st is not None and st.status == "loaded"

    def fits(self, name: str) -> bool:
        """Could `name` be loaded now, evicting idle models if need be?"""
        with self._cond:
            if self._states[name].status != "unloaded":
                return True  # loaded, or on its way: the caller waits for it
            try:
                self._plan_evictions(self._states[name])
                return True
            except LoadError:
                return False

    # -- acquire / release ----------------------------------------------------------------------
    def acquire(self, name: str, timeout: float = 300.0) -> Lease:
        """Make sure `name` is loaded and hold it for one request. Raises LoadError."""
        if name not in self._states:
            raise LoadError(f"model {name!r} is not managed by the loader. Available: {sorted(self._states)}")
        if not self._synced:
            self.sync()
        deadline = self.clock() + timeout
        with self._cond:
            while True:
                st = self._states[name]
                if st.status == "loaded":
                    st.inflight += 1
                    st.last_used = self.clock()
                    return Lease(name, 0.0, self._release)
                if st.status == "unloaded":
                    victims = self._plan_evictions(st)
                    for v in victims:
                        self._states[v].status = "unloading"
                    st.status = "loading"
                    break
                # loading or unloading elsewhere: wait for it to settle
                left = deadline - self.clock()
                if left <= 0:
                    raise LoadError(f"model {name!r}: still {st.status} after {timeout:.0f}s")
                self._cond.wait(min(left, 1.0))
        return self._load(st, victims)

    def _load(self, st: _State, victims: list[str]) -> Lease:
        try:
            for v in victims:
                self._unload(v, "evicted")
            self._ensure_gpu_free(st)
            t0 = self.clock()
            self.control.load(st.name)
            load_s = self.clock() - t0
        except Exception as exc:
            with self._cond:
                st.status, st.settled_at = "unloaded", self.clock()
                self._cond.notify_all()
            self.events.load_failed(st.name, str(exc))
            if isinstance(exc, LoadError):
                raise
            raise LoadError(f"model {st.name!r}: load failed: {_first_line(exc)}") from exc
        with self._cond:
            st.status, st.inflight, st.loads = "loaded", st.inflight + 1, st.loads + 1
            st.last_used, st.last_load_s, st.settled_at = self.clock(), load_s, self.clock()
            self._cond.notify_all()
        self.events.loaded(st.name, load_s)
        log.info("loaded %s in %.2fs (evicted %s)", st.name, load_s, victims or "nothing")
        return Lease(st.name, load_s, self._release)

    def _release(self, name: str) -> None:
        with self._cond:
            st = self._states[name]
            st.inflight -= 1
            st.last_used = self.clock()
            self._cond.notify_all()

    # -- eviction -------------------------------------------------------------------------------
    def _plan_evictions(self, st: _State) -> list[str]:
        """Idle, unpinned models to unload (LRU first) so that `st` fits; LoadError if it cannot."""
        host, gpu = self._used()
        host, gpu = host + st.memory_mb, gpu + st.gpu_memory_mb
        victims: list[str] = []
        idle = sorted((s for s in self._states.values()
                       if s.status == "loaded" and s.inflight == 0 and not s.pinned and s is not st),
                      key=lambda s: s.last_used)
        for cand in idle:
            if host <= self.budget_mb and (not self.gpu_budget_mb or gpu <= self.gpu_budget_mb):
                break
            victims.append(cand.name)
            host -= cand.memory_mb
            gpu -= cand.gpu_memory_mb
        if host > self.budget_mb or (self.gpu_budget_mb and gpu > self.gpu_budget_mb):
            busy = [s.name for s in self._states.values() if s.status != "unloaded" and s.name not in victims]
            raise LoadError(f"model {st.name!r} needs {st.memory_mb:.0f} MB (GPU {st.gpu_memory_mb:.0f} MB) but the "
                            f"budget of {self.budget_mb:.0f} MB (GPU {self.gpu_budget_mb:.0f} MB) is held by {busy}, "
                            "which are pinned, busy or loading")
        return victims

    def _ensure_gpu_free(self, st: _State) -> None:
        """On GPUs the budget is also what NVML says is free: evict more idle models until it is."""
        if self.gpu is None or st.gpu_memory_mb <= 0:
            return
        while self.gpu.free_mb() < st.gpu_memory_mb:
            with self._cond:
                idle = sorted((s for s in self._states.values() if s.status == "loaded" and s.inflight == 0
                               and not s.pinned and s.gpu_memory_mb > 0), key=lambda s: s.last_used)
                if not idle:
                    raise LoadError(f"model {st.name!r} needs {st.gpu_memory_mb:.0f} MB of GPU memory; "
                                    f"NVML reports {self.gpu.free_mb():.0f} MB free and nothing idle to evict")
                idle[0].status = "unloading"
            self._unload(idle[0].name, "gpu-memory")

    def _unload(self, name: str, reason: str) -> None:
        try:
            self.control.unload(name)
            self.control.wait_unloaded(name, self.unload_timeout_s)
        finally:
            with self._cond:
                self._states[name].status = "unloaded"
                self._states[name].settled_at = self.clock()
                self._cond.notify_all()
        self.events.evicted(name, reason)
        log.info("unloaded %s (%s)", name, reason)

    # -- idle unload ----------------------------------------------------------------------------
    def unload_idle(self) -> list[str]:
        """Unload every unpinned model idle for longer than idle_unload_s; returns their names."""
        if self.idle_unload_s <= 0:
            return []
        with self._cond:
            now = self.clock()
            idle = [s for s in self._states.values() if s.status == "loaded" and s.inflight == 0 and not s.pinned
                    and now - s.last_used >= self.idle_unload_s]
            for s in idle:
                s.status = "unloading"
        for s in idle:
            self._unload(s.name, "idle")
        return [s.name for s in idle]

    def start_reaper(self, every_s: float = 1.0) -> None:
        def loop() -> None:
            while not self._stop.wait(every_s):
                try:
                    self.sync()
                    self.unload_idle()
                except Exception as exc:  # keep going; a failed unload is retried next round
                    log.warning("loader upkeep failed: %s", exc)

        self._reaper = threading.Thread(target=loop, name="idle-unloader", daemon=True)
        self._reaper.start()

    def stop(self) -> None:
        self._stop.set()
        if self._reaper:
            self._reaper.join(timeout=5)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
