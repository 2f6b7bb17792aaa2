"""How much memory a load may take: a fixed host budget, and on GPUs what NVML says is free."""
from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger(__name__)


class GpuMemory(Protocol):
    def free_mb(self) -> float: ...
    def used_by(self, pids: list[int]) -> float: ...


class NvmlMemory:
    """Free memory of one GPU, read from NVML (nvidia-ml-py) at each call."""

    def __init__(self, index: int = 0) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)

    def free_mb(self) -> float:
        return self._nvml.nvmlDeviceGetMemoryInfo(self._handle).free / 2**20

    def total_mb(self) -> float:
        return self._nvml.nvmlDeviceGetMemoryInfo(self._handle).total / 2**20

    def used_by(self, pids: list[int]) -> float:
        """GPU memory these processes hold (NVML's per-process accounting), in MB."""
        wanted = set(pids)
        procs = self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
        return sum((p.usedGpuMemory or 0) for p in procs if p.pid in wanted) / 2**20


def detect_gpu() -> NvmlMemory | None:
    """NVML when a GPU and its driver are there; None on a CPU-only machine."""
    try:
        return NvmlMemory()
    except Exception as exc:  # no driver, no device: the CPU profile
        log.info("no GPU memory source (%s); budgeting host memory only", exc.__class__.__name__)
        return None
