"""Self-healing: a model whose stub process died is loaded again, in the background.

Triton 24.10 keeps reporting such a model READY, cannot unload it, and fails every request to it
("Stub process ... is not healthy"); a model-control load of the same model with a config override
starts fresh instances in the same tritonserver. The watcher notices a death three ways: a loaded
model with fewer live stubs than it was seen with, or none (checked every round; every model the
router manages runs in Python-backend stubs), an error saying its stub is
unhealthy, or a call past its deadline whose stub turns out to be gone. It then reloads the model
(single flight with every other load, through the loader) while requests fall back to the chain's
next model. A model that dies again within `stable_s` of coming back waits longer each time
(`backoff_s`) before the next try, so a model that cannot live is not reloaded in a loop.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .loader import ModelLoader

log = logging.getLogger(__name__)
UNHEALTHY = "is not healthy"  # Triton's words for a request to a model whose stub died


@dataclass
class _Case:
    deaths: list[float] = field(default_factory=list)
    streak: int = 0          # deaths in a row, each within stable_s of coming back
    state: str = "healthy"  # healthy | dead | recovering | waiting
    next_try: float = 0.0
    recovered_at: float = 0.0
    last_error: str = ""


def fresh_config(config: str) -> str:
    """A model's config (JSON), marked with this attempt: Triton starts new instances only for a config
    that differs from the one it holds (the same override twice would leave the dead stub)."""
    parsed = json.loads(config)
    parsed.setdefault("parameters", {})["tmr_restart"] = {"string_value": f"{time.time():.3f}"}
    return json.dumps(parsed)


@dataclass
class RecoveryEvents:
    recovered: Callable[[str, str], None] = lambda model, result: None  # result: ok | failed


class Recovery:
    def __init__(self, loader: ModelLoader, find_stubs: Callable[[], dict[str, list[int]]],
                 config_of: Callable[[str], str], backoff_s: tuple[float, ...] = (0.0, 30.0, 120.0, 600.0),
                 stable_s: float = 120.0, events: RecoveryEvents | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 triton_states: Callable[[], dict[str, str]] | None = None) -> None:
        self.loader, self.find_stubs, self.config_of, self.clock = loader, find_stubs, config_of, clock
        # Triton's own view, asked before a death is declared: a model someone else is unloading loses
        # its stubs too, before the loader learns of the unload.
        self.triton_states = triton_states
        self.backoff_s, self.stable_s = backoff_s, stable_s
        self.events = events or RecoveryEvents()
        self._cases: dict[str, _Case] = {}
        self._expected: dict[str, int] = {}  # model -> instances (stubs) its config asks for
        self._lock = threading.Lock()

    # -- what the router asks -------------------------------------------------------------------
    def recovering(self, model: str) -> str:
        """Why `model` must not be used now ("" when it may)."""
        with self._lock:
            case = self._cases.get(model)
            if case is None or case.state == "healthy":
                return ""
            if case.state == "waiting":
                return (f"recovering: its stub died {len(case.deaths)} times; next reload in "
                        f"{max(case.next_try - self.clock(), 0):.0f} s")
            return "recovering: its stub died; reloading"

    def report(self) -> dict[str, dict]:
        with self._lock:
            return {m: {"state": c.state, "deaths": len(c.deaths), "last_error": c.last_error,
                        "next_try_s": round(max(c.next_try - self.clock(), 0), 1) if c.state == "waiting" else 0.0}
                    for m, c in self._cases.items() if c.deaths}

    # -- noticing ---------------------------------------------------------------------------------
    def suspect(self, model: str, error: str) -> None:
        """A call to `model` failed: dead if Triton says its stub is unhealthy, or if it is loaded and
        its stub is gone (a call past its deadline to a stub that died)."""
        if UNHEALTHY in error or (self.loader.is_loaded(model) and not self.find_stubs().get(model)):
            self._died(model, error)

    def check(self) -> None:
        """One round: models the loader holds with fewer live stubs than they started with are dead;
        dead models whose wait is over are reloaded."""
        stubs = self.find_stubs()
        held = {name for name, f in self.loader.footprints().items() if f["status"] == "loaded"}
        lost: list[tuple[str, str]] = []
        for name in held:
            expected = self._instances(name)
            with self._lock:
                case = self._cases.setdefault(name, _Case())
                alive = len(stubs.get(name, []))
                if case.state == "healthy" and alive < expected:  # every model we manage runs in stubs
                    lost.append((name, f"{expected - alive} of its {expected} stub process(es) exited"))
        if lost and self.triton_states is not None:
            states = self.triton_states()
            lost = [(name, why) for name, why in lost if states.get(name) == "READY"]
        for name, why in lost:
            self._died(name, why)
        with self._lock:
            due = [m for m, c in self._cases.items() if c.state in ("dead", "waiting") and self.clock() >= c.next_try]
            for name in due:
                self._cases[name].state = "recovering"
        for name in due:
            threading.Thread(target=self._recover, args=(name,), name=f"recover-{name}", daemon=True).start()

    def _instances(self, model: str) -> int:
        """How many stubs the model runs (its config's instance count), asked once: a count remembered
        from /proc would take the moment a reload's old and new stubs overlap for the normal one."""
        if model not in self._expected:
            try:
                groups = json.loads(self.config_of(model)).get("instance_group") or [{}]
                self._expected[model] = max(sum(int(g.get("count", 1)) for g in groups), 1)
            except Exception:  # Triton unreachable: assume one, ask again next time
                return 1
        return self._expected[model]

    def _died(self, model: str, error: str) -> None:
        with self._lock:
            case = self._cases.setdefault(model, _Case())
            if case.state != "healthy":
                return  # already known
            now = self.clock()
            case.deaths.append(now)
            case.last_error = error
            case.streak = case.streak + 1 if case.recovered_at and now - case.recovered_at < self.stable_s else 1
            wait = self.backoff_s[min(case.streak - 1, len(self.backoff_s) - 1)]
            case.state, case.next_try = ("waiting" if wait else "dead"), now + wait
        log.warning("%s: its stub died (%s); reloading in %.0f s", model, error, wait)

    # -- healing -----------------------------------------------------------------------------------
    def _fresh_config(self, model: str) -> str:
        return fresh_config(self.config_of(model))

    def _recover(self, model: str) -> None:
        try:
            load_s = self.loader.reload(model, self._fresh_config(model))
        except Exception as exc:
            log.warning("%s: reload failed: %s", model, exc)
            with self._lock:
                case = self._cases[model]
                case.state, case.last_error = "waiting", f"reload failed: {exc}"
                case.streak += 1
                case.next_try = self.clock() + max(self.backoff_s[min(case.streak - 1, len(self.backoff_s) - 1)], 5.0)
            self.events.recovered(model, "failed")
            return
        with self._lock:
            case = self._cases[model]
            case.state, case.recovered_at = "healthy", self.clock()
        log.info("%s: back after %.1f s", model, load_s)
        self.events.recovered(model, "ok")
