"""Recent failures per model, and the cool-down that keeps a failing model out of rotation."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable


@dataclass
class _Record:
    consecutive: int = 0
    total: int = 0
    cooldown_until: float = 0.0
    last_error: str = ""


class HealthTracker:
    """After `threshold` consecutive failures a model cools down for `cooldown_s`; a success resets it."""

    def __init__(self, threshold: int = 2, cooldown_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold, self.cooldown_s, self.clock = threshold, cooldown_s, clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def failure(self, model: str, error: str) -> bool:
        """Record a failure; True when this one starts a cool-down."""
        with self._lock:
            r = self._records.setdefault(model, _Record())
            r.consecutive += 1
            r.total += 1
            r.last_error = error
            if r.consecutive >= self.threshold:
                r.cooldown_until = self.clock() + self.cooldown_s
                r.consecutive = 0
                return True
            return False

    def success(self, model: str) -> None:
        with self._lock:
            if model in self._records:
                self._records[model].consecutive = 0

    def cooling(self, model: str) -> float:
        """Seconds of cool-down left (0 when the model may be used)."""
        with self._lock:
            r = self._records.get(model)
            return max(0.0, r.cooldown_until - self.clock()) if r else 0.0

    def recent_failures(self, model: str) -> int:
        with self._lock:
            r = self._records.get(model)
            return r.consecutive if r else 0
