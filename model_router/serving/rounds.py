"""Steps run in rounds on a thread of their own, beside the traffic (the loader's upkeep)."""
from __future__ import annotations

import logging
import threading
from typing import Callable, Iterable

log = logging.getLogger(__name__)


class Rounds:
    """Runs `steps` in order every `every_s` seconds until stopped. A step that fails is logged and the
    round goes on: what it did not do (a failed unload) is tried again next round."""

    def __init__(self, steps: Iterable[Callable[[], None]], every_s: float, name: str) -> None:
        self.steps, self.every_s = tuple(steps), every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            for step in self.steps:
                try:
                    step()
                except Exception as exc:
                    log.warning("%s: %s failed: %s", self._thread.name, getattr(step, "__name__", step), exc)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the round under way (waiting at most `timeout` seconds for it)."""
        self._stop.set()
        self._thread.join(timeout=timeout)
