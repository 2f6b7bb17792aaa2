"""The loader's interfaces: the model control it drives, the leases it hands out, the events it reports
and its error."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from ..errors import ServingError


class ModelControl(Protocol):
    """Triton's model-control API (see triton.control.TritonModelControl)."""

    def load(self, name: str, config: str | None = None) -> None: ...
    def unload(self, name: str) -> None: ...
    def wait_unloaded(self, name: str, timeout: float) -> None: ...
    def states(self) -> dict[str, str]: ...  # model -> READY | LOADING | UNLOADING | UNAVAILABLE


class LoadError(ServingError):
    """A model could not be loaded (the load failed, or it does not fit the budget)."""


@dataclass
class Lease:
    """A model held for one request; closing it lets the model be evicted again."""

    model: str
    load_s: float  # how long the load took, 0.0 when it was loaded already
    _release: Callable[[str], None] = field(repr=False)
    _open: bool = True

    def close(self) -> None:
        if self._open:
            self._open = False
            self._release(self.model)

    def __enter__(self) -> Lease:
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
