"""Which models to evict so that another one fits, or why it cannot: pure decisions, no I/O, no threads.

A model's memory is the larger of what the registry declares and what its processes were measured to
hold. Every model that is not unloaded counts against the budget: loaded, loading, still unloading, and
stuck (an unload that never finished). Only idle models (loaded, no open lease, unpinned) are evicted,
least recently used first; one loaded less than `min_residency_s` ago stays unless the model to load is
pinned or the load is forced (an admin's), and no model is loaded more than `max_loads` times in
`load_window_s` unless pinned or forced. The loader (loader.py) applies these plans under its lock.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable


class ModelStatus(str, Enum):
    """Where a model is in its life, as the loader sees it."""

    UNLOADED = "unloaded"
    LOADING = "loading"
    LOADED = "loaded"
    UNLOADING = "unloading"
    STUCK = "stuck"  # an unload that never finished (its stub died): its memory is still held


@dataclass
class ModelState:
    """One manageable model: what it takes, what holds it, and when it was loaded and used."""

    name: str
    memory_mb: float  # declared by the registry
    gpu_memory_mb: float
    pinned: bool
    status: ModelStatus = ModelStatus.UNLOADED
    inflight: int = 0  # open leases
    last_used: float = 0.0
    loaded_at: float = 0.0
    load_times: list[float] = field(default_factory=list)
    last_load_s: float = 0.0
    settled_at: float = 0.0  # when it last became loaded or unloaded
    external: bool = False   # loading by someone else (seen in Triton's index)
    measured_mb: float = 0.0  # the most its processes were seen holding, kept across unloads
    measured_gpu_mb: float = 0.0

    @property
    def host_mb(self) -> float:
        return max(self.memory_mb, self.measured_mb)

    @property
    def gpu_mb(self) -> float:
        return max(self.gpu_memory_mb, self.measured_gpu_mb)

    def footprint(self, now: float) -> dict[str, float | str | bool]:
        """Its status, leases, declared and measured memory (for the deep health report and metrics)."""
        return {"status": self.status.value, "pinned": self.pinned, "inflight": self.inflight,
                "declared_mb": self.memory_mb, "measured_mb": round(self.measured_mb, 1),
                "declared_gpu_mb": self.gpu_memory_mb, "measured_gpu_mb": round(self.measured_gpu_mb, 1),
                "loaded_for_s": round(now - self.loaded_at, 1) if self.status is ModelStatus.LOADED else 0.0}

    def follow(self, triton: str, now: float) -> ModelStatus | None:
        """Take Triton's word on this model (READY, LOADING, UNLOADING, UNAVAILABLE, or "" when it is not in
        the index): models loaded or loading by someone else are counted, models unloaded by hand (and
        stuck ones Triton let go at last) are forgotten. Returns the new status, None when it kept its own."""
        gone = triton not in ("READY", "LOADING", "UNLOADING")
        if triton == "READY" and self.status in (ModelStatus.UNLOADED, ModelStatus.LOADING):
            self.status, self.last_used, self.loaded_at = ModelStatus.LOADED, now, now
        elif triton == "LOADING" and self.status is ModelStatus.UNLOADED:
            self.status = ModelStatus.LOADING  # someone else's load: count it, wait for it
        elif gone and self.inflight == 0 and self.status in (ModelStatus.LOADED, ModelStatus.LOADING,
                                                             ModelStatus.STUCK):
            self.status = ModelStatus.UNLOADED
        else:
            return None
        self.external = self.status is ModelStatus.LOADING
        return self.status

    @property
    def idle(self) -> bool:
        """Loaded, unpinned and without an open lease: a model that may be evicted."""
        return self.status is ModelStatus.LOADED and self.inflight == 0 and not self.pinned


@dataclass(frozen=True)
class Limits:
    """What keeps one client from churning the cache; forcing (an admin) bypasses them."""

    min_residency_s: float = 60.0
    max_loads: int = 6
    load_window_s: float = 600.0


@dataclass(frozen=True)
class Budget:
    """Memory the loaded models may take, in MB; a GPU budget of 0 means none is kept."""

    host_mb: float
    gpu_mb: float = 0.0

    def holds(self, host_mb: float, gpu_mb: float) -> bool:
        return host_mb <= self.host_mb and (not self.gpu_mb or gpu_mb <= self.gpu_mb)


@dataclass(frozen=True)
class Plan:
    """A load's plan: the models to evict first (in order), or why the load cannot happen now."""

    victims: tuple[str, ...] = ()
    blocker: str = ""  # "" when the load may go ahead

    @property
    def ok(self) -> bool:
        return not self.blocker


def in_use(states: Iterable[ModelState]) -> tuple[float, float]:
    """Host and GPU memory (MB) of every model that is not unloaded."""
    live = [s for s in states if s.status is not ModelStatus.UNLOADED]
    return sum(s.host_mb for s in live), sum(s.gpu_mb for s in live)


def least_recently_used(states: Iterable[ModelState]) -> list[ModelState]:
    """The idle models, least recently used first: the order they are evicted in."""
    return sorted((s for s in states if s.idle), key=lambda s: s.last_used)


@dataclass(frozen=True)
class Planner:
    """The eviction policy over a budget and the limits: every decision is a function of the models'
    states and the time given to it."""

    budget: Budget
    limits: Limits = Limits()
    idle_unload_s: float = 0.0  # unload idle models unused this long; 0: never

    def plan_load(self, target: ModelState, states: Iterable[ModelState], now: float, force: bool = False) -> Plan:
        """The plan for loading `target` (unloaded) now: its load rate, then what to evict to fit it."""
        recent = [t for t in target.load_times if now - t < self.limits.load_window_s]
        if not force and not target.pinned and len(recent) >= self.limits.max_loads:
            return Plan(blocker=f"model {target.name!r} was loaded {len(recent)} times in the last "
                                f"{self.limits.load_window_s:.0f} s (the limit)")
        return self.plan_evictions(target, states, now, force)

    def plan_evictions(self, target: ModelState, states: Iterable[ModelState], now: float,
                       force: bool = False) -> Plan:
        """Idle models to unload (LRU first) so that `target` fits the budget. Models loaded less than
        min_residency_s ago stay, unless `target` is pinned or the load is forced."""
        states = list(states)
        host, gpu = in_use(states)
        host, gpu = host + target.host_mb, gpu + target.gpu_mb
        victims: list[str] = []
        kept: list[str] = []
        for cand in least_recently_used(s for s in states if s is not target):
            if self.budget.holds(host, gpu):
                break
            if not (force or target.pinned) and now - cand.loaded_at < self.limits.min_residency_s:
                kept.append(f"{cand.name} (loaded {now - cand.loaded_at:.0f} s ago; minimum residency "
                            f"{self.limits.min_residency_s:.0f} s)")
                continue
            victims.append(cand.name)
            host -= cand.host_mb
            gpu -= cand.gpu_mb
        if self.budget.holds(host, gpu):
            return Plan(victims=tuple(victims))
        if kept:
            return Plan(blocker=f"model {target.name!r} would evict {', '.join(kept)}")
        busy = [s.name for s in states if s.status is not ModelStatus.UNLOADED and s.name not in victims]
        return Plan(blocker=f"model {target.name!r} needs {target.host_mb:.0f} MB (GPU {target.gpu_mb:.0f} MB) but "
                            f"the memory budget of {self.budget.host_mb:.0f} MB (GPU {self.budget.gpu_mb:.0f} MB) is "
                            f"held by {busy}, which are pinned, busy or loading")

    def over_budget_victim(self, states: Iterable[ModelState]) -> str | None:
        """The idle model to evict next while the memory in use is over the budget (None: within it, or
        nothing idle left to evict)."""
        states = list(states)
        idle = least_recently_used(states)
        return None if self.budget.holds(*in_use(states)) or not idle else idle[0].name

    def idle_expired(self, states: Iterable[ModelState], now: float) -> list[str]:
        """Idle models unused for idle_unload_s or longer."""
        if self.idle_unload_s <= 0:
            return []
        return [s.name for s in states if s.idle and now - s.last_used >= self.idle_unload_s]

    @staticmethod
    def gpu_victim(states: Iterable[ModelState]) -> str | None:
        """The idle model holding GPU memory to evict next when the GPU itself has too little free."""
        idle = least_recently_used(s for s in states if s.gpu_mb > 0)
        return idle[0].name if idle else None
