"""Loads models on demand through Triton's model-control API, within a memory budget.

Guarantees, under any number of concurrent callers:
- one load per model at a time; other callers wait for it (single flight);
- before a load, least-recently-used idle, unpinned models are evicted until the memory of
  everything loaded, loading or still unloading fits the budget. A model's memory is the larger
  of what the registry declares and what its processes were measured to hold (`measure`, kept
  across unloads); on GPUs, NVML's free memory must also cover the model;
- a model loaded on demand stays for at least `min_residency_s` (no thrashing: one client cannot
  make every request load a model and evict another's), unless a pinned model needs the memory
  or the caller forces it; and no model is loaded more than `max_loads` times in `load_window_s`;
- a model with requests in flight (an open Lease) is never evicted or idle-unloaded;
- Triton's unload returns before the model is gone: we wait until it is before counting the
  memory as free, and a model whose unload never finishes (its stub died) stays counted;
- the view is Triton's before any decision: models loaded or loading by anyone (the launcher's
  startup loads included) are counted, and if the memory in use is ever found over the budget,
  idle unpinned models are evicted until it is not.
The control calls run on the caller's thread, outside the lock: a load never stalls traffic
to models that are already loaded.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from ..errors import Cancelled, ServingError, never
from .memory import GpuMemory

log = logging.getLogger(__name__)


class ModelControl(Protocol):
    """Triton's model-control API (see triton.control.TritonModelControl)."""

    def load(self, name: str, config: str | None = None) -> None: ...
    def unload(self, name: str) -> None: ...
    def wait_unloaded(self, name: str, timeout: float) -> None: ...
    def states(self) -> dict[str, str]: ...  # model -> READY | LOADING | UNLOADING | UNAVAILABLE


class LoadError(ServingError):
    """A model could not be loaded (the load failed, or it does not fit the budget)."""


@dataclass
class _State:
    name: str
    memory_mb: float
    gpu_memory_mb: float
    pinned: bool
    # unloaded | loading | loaded | unloading | stuck (an unload that never finished: still held)
    status: str = "unloaded"
    inflight: int = 0
    last_used: float = 0.0
    loaded_at: float = 0.0
    load_times: list[float] = field(default_factory=list)
    last_load_s: float = 0.0
    settled_at: float = 0.0  # when it last became loaded or unloaded
    external: bool = False   # loading by someone else (seen in Triton's index)
    measured_mb: float = 0.0
    measured_gpu_mb: float = 0.0

    @property
    def host_mb(self) -> float:
        return max(self.memory_mb, self.measured_mb)

    @property
    def gpu_mb(self) -> float:
        return max(self.gpu_memory_mb, self.measured_gpu_mb)


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
    measured: Callable[[str, float, float], None] = lambda model, host_mb, gpu_mb: None


@dataclass(frozen=True)
class Limits:
    """What keeps one client from churning the cache; forcing (an admin) bypasses them."""

    min_residency_s: float = 60.0
    max_loads: int = 6
    load_window_s: float = 600.0


class ModelLoader:
    def __init__(self, control: ModelControl, models: dict[str, tuple[float, float, bool]],
                 memory_budget_mb: float, gpu_memory_budget_mb: float = 0.0, gpu: GpuMemory | None = None,
                 idle_unload_s: float = 0.0, unload_timeout_s: float = 120.0, limits: Limits = Limits(),
                 measure: Callable[[str], tuple[float, float]] | None = None,
                 events: LoaderEvents | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        """`models` maps each manageable model to (memory_mb, gpu_memory_mb, pinned); `measure(name)`
        returns what a loaded model's processes hold (host MB, GPU MB)."""
        self.control, self.gpu, self.clock, self.limits, self.measure = control, gpu, clock, limits, measure
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
        """Match Triton: adopt models loaded (or loading) by others, forget models unloaded by hand.

        Models this loader is loading or unloading, or that settled after the snapshot was taken,
        are left alone: it knows better."""
        taken = self.clock()
        states = self.control.states()
        with self._cond:
            for st in self._states.values():
                if st.settled_at > taken or (st.status in ("loading", "unloading") and not st.external):
                    continue
                self._follow(st, states.get(st.name, ""))
            self._synced = True
            self._cond.notify_all()

    def _follow(self, st: _State, triton: str) -> None:
        if triton == "READY" and st.status in ("unloaded", "loading"):
            st.status, st.external, st.last_used, st.loaded_at = "loaded", False, self.clock(), self.clock()
        elif triton == "LOADING" and st.status == "unloaded":
            st.status, st.external = "loading", True  # someone else's load: count it, wait for it
        elif triton not in ("READY", "LOADING", "UNLOADING") and st.status in ("loaded", "loading", "stuck") \
                and st.inflight == 0:
            if st.status == "loaded":
                log.info("%s was unloaded behind the router's back", st.name)
            st.status, st.external = "unloaded", False

    def used_mb(self) -> tuple[float, float]:
        with self._cond:
            return self._used()

    def _used(self) -> tuple[float, float]:
        live = [s for s in self._states.values() if s.status != "unloaded"]
        return sum(s.host_mb for s in live), sum(s.gpu_mb for s in live)

    def is_loaded(self, name: str) -> bool:
        with self._cond:
            st = self._states.get(name)
            return st is not None and st.status == "loaded"

    def fits(self, name: str) -> bool:
        return not self.blocker(name)

    def blocker(self, name: str, force: bool = False) -> str:
        """Why `name` could not be loaded now ("" when it can, evicting idle models if need be)."""
        if not self._synced:
            self.sync()
        with self._cond:
            st = self._states[name]
            if st.status != "unloaded":
                return "" if st.status != "stuck" else "its last unload never finished (its stub died)"
            try:
                self._check_rate(st, force)
                self._plan_evictions(st, force)
                return ""
            except LoadError as exc:
                return str(exc)

    def footprints(self) -> dict[str, dict[str, float | str | bool]]:
        """Per model: status, declared and measured memory (for the deep health report and metrics)."""
        with self._cond:
            return {s.name: {"status": s.status, "pinned": s.pinned, "inflight": s.inflight,
                             "declared_mb": s.memory_mb, "measured_mb": round(s.measured_mb, 1),
                             "declared_gpu_mb": s.gpu_memory_mb, "measured_gpu_mb": round(s.measured_gpu_mb, 1),
                             "loaded_for_s": round(self.clock() - s.loaded_at, 1) if s.status == "loaded" else 0.0}
                    for s in self._states.values()}

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
            while True:
                st = self._states[name]
                if st.status == "loaded":
                    st.inflight += 1
                    st.last_used = self.clock()
                    return Lease(name, 0.0, self._release)
                if st.status == "unloaded":
                    self._check_rate(st, force)
                    victims = self._plan_evictions(st, force)
                    for v in victims:
                        self._states[v].status = "unloading"
                    st.status = "loading"
                    break
                if st.status == "stuck":
                    raise LoadError(f"model {name!r}: its last unload never finished (its stub died)")
                # loading or unloading elsewhere: wait for it to settle
                if cancelled():
                    raise Cancelled(f"while waiting for {name} to load")
                left = deadline - self.clock()
                if left <= 0:
                    raise LoadError(f"model {name!r}: still {st.status} after {timeout:.0f}s")
                self._cond.wait(min(left, 0.25))
        return self._load(st, victims)

    def _load(self, st: _State, victims: list[str], config: str | None = None) -> Lease:
        try:
            for v in victims:
                self._unload(v, "evicted")
            self._ensure_gpu_free(st)
            t0 = self.clock()
            self.control.load(st.name, config) if config else self.control.load(st.name)
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
            now = self.clock()
            st.status, st.external, st.inflight = "loaded", False, st.inflight + 1
            st.last_used, st.loaded_at, st.last_load_s, st.settled_at = now, now, load_s, now
            st.load_times = [t for t in st.load_times if now - t < self.limits.load_window_s] + [now]
            self._cond.notify_all()
        self.events.loaded(st.name, load_s)
        self._measure(st)
        log.info("loaded %s in %.2fs (evicted %s)", st.name, load_s, victims or "nothing")
        return Lease(st.name, load_s, self._release)

    def reload(self, name: str, config: str) -> float:
        """Load `name` again with a config override, which makes Triton start fresh instances (how a
        model whose stub died comes back); single flight with every other load. Returns its load time."""
        with self._cond:
            st = self._states[name]
            while st.status in ("loading", "unloading"):
                self._cond.wait(0.25)
            held = st.status != "unloaded"
            victims = [] if held else self._plan_evictions(st, force=st.pinned)
            for v in victims:
                self._states[v].status = "unloading"
            st.status = "loading"
        lease = self._load(st, victims, config)
        lease.close()
        return lease.load_s

    def _release(self, name: str) -> None:
        with self._cond:
            st = self._states[name]
            st.inflight -= 1
            st.last_used = self.clock()
            self._cond.notify_all()

    # -- what a model takes ---------------------------------------------------------------------
    def _measure(self, st: _State) -> None:
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
    def _check_rate(self, st: _State, force: bool) -> None:
        recent = [t for t in st.load_times if self.clock() - t < self.limits.load_window_s]
        if not force and not st.pinned and len(recent) >= self.limits.max_loads:
            raise LoadError(f"model {st.name!r} was loaded {len(recent)} times in the last "
                            f"{self.limits.load_window_s:.0f} s (the limit)")

    def _plan_evictions(self, st: _State, force: bool = False) -> list[str]:
        """Idle, unpinned models to unload (LRU first) so that `st` fits; LoadError if it cannot.
        Models loaded less than min_residency_s ago stay, unless `st` is pinned or forced."""
        host, gpu = self._used()
        host, gpu = host + st.host_mb, gpu + st.gpu_mb
        now, victims, kept = self.clock(), [], []
        idle = sorted((s for s in self._states.values()
                       if s.status == "loaded" and s.inflight == 0 and not s.pinned and s is not st),
                      key=lambda s: s.last_used)
        for cand in idle:
            if self._within(host, gpu):
                break
            if not (force or st.pinned) and now - cand.loaded_at < self.limits.min_residency_s:
                kept.append(f"{cand.name} (loaded {now - cand.loaded_at:.0f} s ago; minimum residency "
                            f"{self.limits.min_residency_s:.0f} s)")
                continue
            victims.append(cand.name)
            host -= cand.host_mb
            gpu -= cand.gpu_mb
        if not self._within(host, gpu):
            if kept:
                raise LoadError(f"model {st.name!r} would evict {', '.join(kept)}")
            busy = [s.name for s in self._states.values() if s.status != "unloaded" and s.name not in victims]
            raise LoadError(f"model {st.name!r} needs {st.host_mb:.0f} MB (GPU {st.gpu_mb:.0f} MB) but the memory "
                            f"budget of {self.budget_mb:.0f} MB (GPU {self.gpu_budget_mb:.0f} MB) is held by {busy}, "
                            "which are pinned, busy or loading")
        return victims

    def _within(self, host: float, gpu: float) -> bool:
        return host <= self.budget_mb and (not self.gpu_budget_mb or gpu <= self.gpu_budget_mb)

    def _ensure_gpu_free(self, st: _State) -> None:
        """On GPUs the budget is also what NVML says is free: evict more idle models until it is."""
        if self.gpu is None or st.gpu_mb <= 0:
            return
        while self.gpu.free_mb() < st.gpu_mb:
            with self._cond:
                idle = sorted((s for s in self._states.values() if s.status == "loaded" and s.inflight == 0
                               and not s.pinned and s.gpu_mb > 0), key=lambda s: s.last_used)
                if not idle:
                    raise LoadError(f"model {st.name!r} needs {st.gpu_mb:.0f} MB of GPU memory; "
                                    f"NVML reports {self.gpu.free_mb():.0f} MB free and nothing idle to evict")
                idle[0].status = "unloading"
            self._unload(idle[0].name, "gpu-memory")

    def _unload(self, name: str, reason: str) -> None:
        """Unload and wait until Triton has let go; an unload that never finishes leaves it `stuck`
        (its memory still counted, never chosen again) until Triton's index says it is gone."""
        status = "unloaded"
        try:
            self.control.unload(name)
            self.control.wait_unloaded(name, self.unload_timeout_s)
        except Exception:
            status = "stuck"
            raise
        finally:
            with self._cond:
                self._states[name].status = status
                self._states[name].settled_at = self.clock()
                self._cond.notify_all()
        self.events.evicted(name, reason)
        log.info("unloaded %s (%s)", name, reason)

    def enforce_budget(self) -> list[str]:
        """Evict idle unpinned models (LRU first) while the memory in use is over the budget."""
        evicted = []
        while True:
            with self._cond:
                host, gpu = self._used()
                idle = sorted((s for s in self._states.values()
                               if s.status == "loaded" and s.inflight == 0 and not s.pinned), key=lambda s: s.last_used)
                if self._within(host, gpu) or not idle:
                    return evicted
                idle[0].status = "unloading"
            log.warning("memory in use (%.0f MB) is over the budget (%.0f MB): evicting %s", host, self.budget_mb,
                        idle[0].name)
            self._unload(idle[0].name, "over-budget")
            evicted.append(idle[0].name)

    # -- upkeep -----------------------------------------------------------------------------------
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

    def upkeep(self) -> None:
        """One round: follow Triton, keep to the budget, unload idle models, measure the loaded ones."""
        self.sync()
        self.enforce_budget()
        self.unload_idle()
        with self._cond:
            loaded = [s for s in self._states.values() if s.status == "loaded"]
        for st in loaded:
            self._measure(st)

    def start_reaper(self, every_s: float = 1.0, extra: Callable[[], None] = lambda: None) -> None:
        """Upkeep every `every_s` on a thread of its own (with `extra`, e.g. the health watcher's round)."""
        def loop() -> None:
            while not self._stop.wait(every_s):
                for step in (self.upkeep, extra):
                    try:
                        step()
                    except Exception as exc:  # keep going; a failed unload is retried next round
                        log.warning("loader upkeep failed: %s", exc)

        self._reaper = threading.Thread(target=loop, name="loader-upkeep", daemon=True)
        self._reaper.start()

    def stop(self) -> None:
        self._stop.set()
        if self._reaper:
            self._reaper.join(timeout=5)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
